package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/floodgate-ddos/floodgate/controller"
)

var updateCapture = flag.Bool("update-capture", false, "rewrite testdata/ntp-reflection.pcap")

// writeCapture makes the committed test capture: 1 packet in 100 of 8 s of
// web traffic to ten hosts, with an NTP reflection of 50 kpps from 300
// reflectors to 203.0.113.10 from second 2 to second 5. Frames are cut at
// 64 bytes, as a sampler would.
func writeCapture(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(64, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	frame := func(src, dst netip.Addr, proto uint8, sport, dport uint16, ipLen int) []byte {
		b := make([]byte, 14+20+8)
		copy(b[0:12], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
		binary.BigEndian.PutUint16(b[12:14], 0x0800)
		ip := b[14:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
		ip[8], ip[9] = 64, proto
		s, d := src.As4(), dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[20:22], sport)
		binary.BigEndian.PutUint16(ip[22:24], dport)
		if proto == 6 {
			b = append(b, make([]byte, 12)...)
			b[14+20+13] = 0x18 // ACK PSH
		}
		return b
	}
	type pkt struct {
		at   time.Duration
		data []byte
		orig int
	}
	var pkts []pkt
	for ms := 0; ms < 8000; ms += 10 { // web traffic: ten hosts, 1 sampled packet each per 10 ms... per host 1 in 10 ticks
		if rng.IntN(10) == 0 {
			h := netip.AddrFrom4([4]byte{203, 0, 113, byte(20 + rng.IntN(10))})
			pkts = append(pkts, pkt{time.Duration(ms) * time.Millisecond, frame(netip.MustParseAddr("198.51.100.80"), h, 6, 443, 50000, 1500), 1514})
		}
	}
	for ms := 2000; ms < 5000; ms++ { // 50 kpps sampled 1:100 = 500 per second
		if rng.IntN(2) == 0 {
			src := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + rng.IntN(254))})
			d := frame(src, netip.MustParseAddr("203.0.113.10"), 17, 123, uint16(1024+rng.IntN(60000)), 468)
			pkts = append(pkts, pkt{time.Duration(ms)*time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond, d, 482})
		}
	}
	for i := 1; i < len(pkts); i++ { // insertion sort by time, stable and small
		for j := i; j > 0 && pkts[j].at < pkts[j-1].at; j-- {
			pkts[j], pkts[j-1] = pkts[j-1], pkts[j]
		}
	}
	for _, p := range pkts {
		ci := gopacketCaptureInfo(t0.Add(p.at), len(p.data), p.orig)
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplay(t *testing.T) {
	capture := "testdata/ntp-reflection.pcap"
	if *updateCapture {
		writeCapture(t, capture)
	}
	code, out, errOut := run("replay", "--config", "testdata/replay.hcl", "--sampling", "100", capture)
	if code != exitOK {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"attacks found: 1",
		"203.0.113.10/32",
		"123 (100%)",
		"announce  flowspec [dst 203.0.113.10/32 proto 17 sport 123 length 257-65535] then discard  reflection",
		"withdraw  flowspec [dst 203.0.113.10/32 proto 17 sport 123 length 257-65535] then discard",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run("replay", "--config", "testdata/replay.hcl", "--sampling", "100", "--json", capture)
	var res controller.ReplayResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("replay --json: %d %s", code, out)
	}
	if len(res.Attacks) != 1 || len(res.Actions) != 2 {
		t.Fatalf("result %+v", res)
	}
	// Detected within a second of the attack's start (sampled 1:100, the
	// estimate must pass the limit at the detection confidence, which
	// takes a tick or two more than the estimate alone), withdrawn after
	// the response's duration once the attack ended.
	start := res.First.Add(2 * time.Second)
	if d := res.Attacks[0].Signature.Started.Sub(start); d < 0 || d > time.Second {
		t.Errorf("attack detected %s after it began", d)
	}
	if d := res.Actions[1].At.Sub(res.Actions[0].At); d < 30*time.Second {
		t.Errorf("withdrawn %s after the announcement, before the 30s duration", d)
	}
	if code, _, errOut := run("replay", "--config", "testdata/replay.hcl", "testdata/none.pcap"); code != exitFailure || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing capture: %d %s", code, errOut)
	}
}
