package flow

import (
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/internal/sourcetest"
)

// The files in testdata/ are what real exporters sent for
// ../testdata/traffic.pcap (made by ../testdata/mktraffic.py), captured on
// loopback by testdata/capture.sh: softflowd 1.1.0 (NetFlow v5, v9, IPFIX)
// and pmacctd 1.7.7 with the sfprobe plugin (sFlow v5), unsampled and 1 in
// 4. The tests decode them and compare per-host totals with the capture,
// decoded independently with gopacket.

// udpDatagram is one captured export datagram.
type udpDatagram struct {
	from    netip.Addr
	at      time.Time
	payload []byte
}

// readDatagrams returns the UDP payloads of a pcap of export datagrams.
func readDatagrams(t testing.TB, path string) []udpDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []udpDatagram
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Fatalf("%s: packet without UDP: %v", path, p)
		}
		src, _ := p.NetworkLayer().NetworkFlow().Endpoints()
		a, _ := netip.AddrFromSlice(src.Raw())
		out = append(out, udpDatagram{from: a.Unmap(), at: ci.Timestamp, payload: u.Payload})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no datagrams", path)
	}
	return out
}

// decodeFile decodes every datagram of a captured export in order, as one
// collector worker would.
func decodeFile(t testing.TB, d *Decoder, path string) []sources.Record {
	t.Helper()
	var recs []sources.Record
	for i, dg := range readDatagrams(t, path) {
		var err error
		recs, err = d.Decode(dg.from, dg.at, dg.payload, recs)
		if err != nil {
			t.Fatalf("%s: datagram %d: %v", path, i, err)
		}
	}
	return recs
}

// realCases are the captured exports and what each must match.
var realCases = []struct {
	file     string
	proto    Protocol
	model    sourcetest.Model
	sampling uint32
}{
	{"softflowd-v5.pcap", ProtoNetFlow, sourcetest.SoftflowdV5, 1},
	{"softflowd-v9.pcap", ProtoNetFlow, sourcetest.Softflowd, 1},
	{"softflowd-v10.pcap", ProtoNetFlow, sourcetest.Softflowd, 1},
	{"pmacctd-sflow.pcap", ProtoSFlow, sourcetest.Sfprobe, 1},
	{"softflowd-v5-sampled4.pcap", ProtoNetFlow, sourcetest.SoftflowdV5, 4},
	{"softflowd-v9-sampled4.pcap", ProtoNetFlow, sourcetest.Softflowd, 4},
	{"softflowd-v10-sampled4.pcap", ProtoNetFlow, sourcetest.Softflowd, 4},
	{"pmacctd-sflow-sampled4.pcap", ProtoSFlow, sourcetest.Sfprobe, 4},
}

// TestRealExporters decodes what softflowd and pmacctd sent for the
// capture and checks the per-host totals: exactly when unsampled, within
// the sampling error when 1 in 4.
func TestRealExporters(t *testing.T) {
	pkts := sourcetest.ReadTraffic(t)
	for _, c := range realCases {
		t.Run(c.file, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{Protocol: c.proto})
			recs := decodeFile(t, d, "testdata/"+c.file)
			checkRecords(t, recs)
			for _, r := range recs {
				if r.Sampling != c.sampling {
					t.Fatalf("record with sampling %d, want %d (taken from the export): %+v", r.Sampling, c.sampling, r)
				}
			}
			got, want := sourcetest.TotalsOfRecords(recs), sourcetest.TotalsOfPackets(pkts, c.model)
			if c.sampling == 1 {
				sourcetest.Compare(t, got, want)
				return
			}
			checkSampled(t, got, want, c.sampling)
		})
	}
}

// checkSampled checks sampled estimates against the truth: the packets of
// the whole capture and of every host with at least 40 packets within four
// standard deviations of 1-in-n sampling plus one sample, the bytes of the
// whole capture within 15 %.
func checkSampled(t *testing.T, got, want map[netip.Addr]sourcetest.HostTotals, n uint32) {
	t.Helper()
	p := 1 / float64(n)
	within := func(what string, est, truth uint64) {
		sd := float64(n) * math.Sqrt(float64(truth)*p*(1-p))
		if diff := math.Abs(float64(est) - float64(truth)); diff > 4*sd+float64(n) {
			t.Errorf("%s: estimated %d packets, true %d (off by %.0f, allowed %.0f)", what, est, truth, diff, 4*sd+float64(n))
		}
	}
	var gotPkts, wantPkts, gotBytes, wantBytes uint64
	for _, a := range sourcetest.SortedHosts(got, want) {
		if w := want[a]; w.InPkts >= 40 {
			within("packets to "+a.String(), got[a].InPkts, w.InPkts)
		}
		gotPkts += got[a].InPkts
		wantPkts += want[a].InPkts
		gotBytes += got[a].InBytes
		wantBytes += want[a].InBytes
	}
	within("all packets", gotPkts, wantPkts)
	if r := float64(gotBytes) / float64(wantBytes); r < 0.85 || r > 1.15 {
		t.Errorf("all bytes: estimated %d, true %d", gotBytes, wantBytes)
	}
}

// TestRealExporterFields checks record fields beyond the totals on the
// unsampled exports: TCP flags of the SYN flood, ICMP type and code in
// NetFlow's convention, the flow durations kept and the exporter address.
func TestRealExporterFields(t *testing.T) {
	synVictim := netip.MustParseAddr("203.0.113.11")
	pinger := netip.MustParseAddr("198.51.100.60")
	for _, c := range realCases {
		if c.sampling != 1 {
			continue
		}
		t.Run(c.file, func(t *testing.T) {
			recs := decodeFile(t, NewDecoder(DecoderConfig{Protocol: c.proto}), "testdata/"+c.file)
			var syns, pings int
			var longest int64
			for _, r := range recs {
				if r.Dst == synVictim {
					syns++
					if r.Proto != 6 || r.TCPFlags != 0x02 || r.DstPort != 80 {
						t.Errorf("SYN flood record %+v", r)
					}
				}
				if r.Src == pinger && r.Proto == 1 {
					pings++
					if r.SrcPort != 0 || r.DstPort != 8<<8 {
						t.Errorf("ICMP echo request record: ports %d, %d; want 0, %d", r.SrcPort, r.DstPort, 8<<8)
					}
				}
				longest = max(longest, r.End-r.Start)
				if want := netip.MustParseAddr("127.0.0.1"); c.proto == ProtoNetFlow && r.Exporter != want {
					t.Errorf("exporter %s, want %s", r.Exporter, want)
				}
			}
			if syns == 0 || pings == 0 {
				t.Errorf("%d SYN flood and %d ICMP echo records, want some of each", syns, pings)
			}
			// The capture spans about two seconds; the HTTPS session lasts
			// 1.51 s. sFlow samples are instants.
			switch {
			case c.proto == ProtoSFlow && longest != 0:
				t.Errorf("sFlow record with a duration of %v", time.Duration(longest))
			case c.proto == ProtoNetFlow && (longest < int64(time.Second) || longest > int64(3*time.Second)):
				t.Errorf("longest flow %v, want about 1.7 s", time.Duration(longest))
			}
		})
	}
}
