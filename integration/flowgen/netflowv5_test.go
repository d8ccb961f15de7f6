package flowgen

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
)

// decodeV5 decodes one NetFlow v5 datagram with goflow2 and turns its
// records into flows, computing times as a collector does from the export
// time and uptime in the header.
func decodeV5(t *testing.T, b []byte) (*netflowlegacy.PacketNetFlowV5, []Flow) {
	t.Helper()
	var p netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	export := time.Unix(int64(p.UnixSecs), int64(p.UnixNSecs))
	at := func(ms uint32) time.Time {
		return export.Add(-time.Duration(p.SysUptime-ms) * time.Millisecond)
	}
	addr := func(a netflowlegacy.IPAddress) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	}
	var flows []Flow
	for _, r := range p.Records {
		if r.NextHop != 0 || r.Input != 0 || r.Output != 0 || r.Tos != 0 || r.SrcAS != 0 || r.DstAS != 0 ||
			r.SrcMask != 0 || r.DstMask != 0 || r.Pad1 != 0 || r.Pad2 != 0 {
			t.Errorf("record has non-zero unused fields: %+v", r)
		}
		flows = append(flows, Flow{
			Src: addr(r.SrcAddr), Dst: addr(r.DstAddr),
			SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto, TCPFlags: r.TCPFlags,
			Packets: uint64(r.DPkts), Bytes: uint64(r.DOctets),
			Start: at(r.First), End: at(r.Last),
		})
	}
	return &p, flows
}

func TestNetFlowV5RoundTrip(t *testing.T) {
	v4 := onlyFamily(testFlows(), false)
	tests := []struct {
		name     string
		enc      NetFlowV5
		flows    []Flow
		sampling uint16
	}{
		{name: "unsampled", enc: NetFlowV5{Boot: testBoot}, flows: v4},
		{
			name:     "random 1 in 1000",
			enc:      NetFlowV5{Boot: testBoot, EngineType: 1, EngineID: 9, SamplingMode: 2, SamplingInterval: 1000},
			flows:    v4,
			sampling: 0x8000 | 1000,
		},
		{
			name:     "largest deterministic interval",
			enc:      NetFlowV5{Boot: testBoot, SamplingMode: 1, SamplingInterval: 0x3fff},
			flows:    v4[:1],
			sampling: 0x7fff,
		},
		{name: "full datagram", enc: NetFlowV5{Boot: testBoot}, flows: ipv4Flows(NetFlowV5MaxRecords)},
		{name: "zero boot wraps uptime", flows: v4},
		{name: "no flows", enc: NetFlowV5{Boot: testBoot}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.enc
			first := must(t)(enc.AppendData(nil, testNow, tt.flows))
			b := must(t)(enc.AppendData(nil, testNow, tt.flows))
			if len(first) != len(b) {
				t.Fatalf("datagrams of %d and %d bytes", len(first), len(b))
			}
			p, got := decodeV5(t, b)
			if diff := cmp.Diff(got, wantNetFlow(tt.flows, testNow, false), flowOpts); diff != "" {
				t.Errorf("flows (-got +want):\n%s", diff)
			}

			type header struct {
				Version, Count             uint16
				Sequence                   uint32
				EngineType, EngineID       uint8
				Sampling                   uint16
				UnixSecs, UnixNSecs, Bytes uint32
			}
			gotHdr := header{p.Version, p.Count, p.FlowSequence, p.EngineType, p.EngineId, p.SamplingInterval,
				p.UnixSecs, p.UnixNSecs, uint32(len(b))}
			// The export time is testNow rounded up to the millisecond.
			wantHdr := header{5, uint16(len(tt.flows)), uint32(len(tt.flows)), tt.enc.EngineType, tt.enc.EngineID, tt.sampling,
				wantExportSecs, 346_000_000, uint32(24 + 48*len(tt.flows))}
			if diff := cmp.Diff(gotHdr, wantHdr); diff != "" {
				t.Errorf("header (-got +want):\n%s", diff)
			}
			if wantUptime := uint32((26*time.Hour + 346*time.Millisecond).Milliseconds()); !tt.enc.Boot.IsZero() && p.SysUptime != wantUptime {
				t.Errorf("sysUptime = %d, want %d", p.SysUptime, wantUptime)
			}
		})
	}
}

func TestNetFlowV5Errors(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name  string
		enc   NetFlowV5
		flows []Flow
		want  error
	}{
		{name: "ipv6 flow", flows: []Flow{{Src: v6, Dst: v6}}, want: ErrInvalidFlow},
		{name: "mixed families", flows: []Flow{{Src: v4, Dst: v6}}, want: ErrInvalidFlow},
		{name: "packets overflow", flows: []Flow{{Src: v4, Dst: v4, Packets: 1 << 32}}, want: ErrInvalidFlow},
		{name: "bytes overflow", flows: []Flow{{Src: v4, Dst: v4, Bytes: 1 << 32}}, want: ErrInvalidFlow},
		{name: "31 flows", flows: ipv4Flows(31), want: ErrTooManyRecords},
		{name: "interval above 14 bits", enc: NetFlowV5{SamplingInterval: 0x4000}, flows: ipv4Flows(1), want: ErrInvalidExporter},
		{name: "mode above 2 bits", enc: NetFlowV5{SamplingMode: 4}, flows: ipv4Flows(1), want: ErrInvalidExporter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			enc := tt.enc
			b, err := enc.AppendData(prefix, testNow, tt.flows)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(b, prefix); diff != "" {
				t.Errorf("buffer changed on error (-got +want):\n%s", diff)
			}
			if enc.seq != 0 {
				t.Errorf("sequence moved to %d on error", enc.seq)
			}
		})
	}
}
