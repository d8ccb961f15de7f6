package flowspec

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		in   string
		want Rule
		err  string
	}{
		{in: "dst 203.0.113.10/32 proto 17 sport 123",
			want: Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []uint8{17}, SrcPorts: []Range{Single(123)}}},
		{in: "dst 2001:db8::10/128 proto tcp,udp dport 80,1000-2000 tcp-flags syn,!ack length 0-64 dscp 8 label 5",
			want: Rule{Dst: netip.MustParsePrefix("2001:db8::10/128"), Protocols: []uint8{6, 17}, DstPorts: []Range{Single(80), {1000, 2000}},
				TCPFlagsSet: FlagSYN, TCPFlagsUnset: FlagACK, PacketLengths: []Range{{0, 64}}, DSCP: []uint8{8}, FlowLabels: []uint32{5}}},
		{in: "dst 203.0.113.0/28 src 198.51.100.0/24 fragment is,first icmp-type 8 icmp-code 0 port 53",
			want: Rule{Dst: netip.MustParsePrefix("203.0.113.0/28"), Src: netip.MustParsePrefix("198.51.100.0/24"), Fragment: FragIsFragment | FragFirst,
				ICMPTypes: []uint8{8}, ICMPCodes: []uint8{0}, Ports: []Range{Single(53)}}},
		{in: "proto 17", err: "destination"},
		{in: "dst 203.0.113.1/24", err: "host bits"},
		{in: "dst 203.0.113.1/32 sport 70000", err: "not a number"},
		{in: "dst 203.0.113.1/32 sport 9-3", err: "range"},
		{in: "dst 203.0.113.1/32 bogus 1", err: "unknown component"},
		{in: "dst 203.0.113.1/32 proto", err: "no value"},
		{in: "dst 203.0.113.1/32 tcp-flags syn,fnord", err: "not a TCP flag"},
		{in: "dst 203.0.113.1/32 dst 203.0.113.2/32", err: "twice"},
	}
	for _, tc := range tests {
		got, err := ParseRule(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRule(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(got, tc.want, cmpNet); diff != "" {
			t.Errorf("ParseRule(%q) (-got +want):\n%s", tc.in, diff)
		}
		// The canonical text parses back to the same rule.
		again, err := ParseRule(got.String())
		if err != nil || again.String() != got.String() {
			t.Errorf("round trip of %q: %q, %v", got.String(), again.String(), err)
		}
	}
}

// FuzzParseRule: no input panics, and an accepted rule's canonical text
// parses back to the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"dst 203.0.113.10/32 proto 17 sport 123",
		"dst 2001:db8::10/128 proto tcp dport 80,1000-2000 tcp-flags set=0x02 unset=0x10 length 0-64",
		"dst 203.0.113.0/28 fragment 0x02 dscp 1,2 label 7",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		again, err := ParseRule(r.String())
		if err != nil || again.String() != r.String() {
			t.Fatalf("round trip of %q: %q, %v", r.String(), again.String(), err)
		}
		_ = r.Validate()
	})
}
