package flowgen

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Times shared by the tests: the exporter booted with a sub-millisecond
// fraction, and export happens a day later, mid-second.
var (
	testBoot = time.Date(2025, 3, 1, 0, 0, 0, 250_400, time.UTC)
	testNow  = testBoot.Add(26*time.Hour + 345_678_912*time.Nanosecond)
)

// flowOpts compares decoded flows: addresses by value, times within the
// millisecond resolution of the formats, nil and empty lists alike.
var flowOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateApproxTime(time.Millisecond),
	cmpopts.EquateEmpty(),
}

// testFlows returns flows of both families and the common protocols, with
// counters that fit NetFlow v5, sub-millisecond times and one flow without
// times.
func testFlows() []Flow {
	at := func(d time.Duration) time.Time { return testNow.Add(-d) }
	return []Flow{
		{
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.10"),
			SrcPort: 40000, DstPort: 80, Proto: 6, TCPFlags: 0x12,
			Packets: 10, Bytes: 5000, Start: at(10*time.Second + 500*time.Microsecond), End: at(time.Second),
		},
		{
			Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::80"),
			SrcPort: 51000, DstPort: 443, Proto: 6, TCPFlags: 0x02,
			Packets: 1, Bytes: 60, Start: at(3 * time.Second), End: at(3 * time.Second),
		},
		{
			Src: netip.MustParseAddr("203.0.113.5"), Dst: netip.MustParseAddr("198.51.100.10"),
			SrcPort: 53, DstPort: 1234, Proto: 17,
			Packets: 4_000_000_000, Bytes: 4_294_967_295, Start: at(59 * time.Second), End: at(123 * time.Microsecond),
		},
		{
			Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("192.0.2.200"),
			DstPort: 8 << 8, Proto: 1, // echo request, code 0
			Packets: 3, Bytes: 252, Start: at(2 * time.Second), End: at(time.Second),
		},
		{
			Src: netip.MustParseAddr("2001:db8:2::53"), Dst: netip.MustParseAddr("2001:db8::1"),
			SrcPort: 53, DstPort: 33000, Proto: 17,
			Packets: 2, Bytes: 3000, Start: at(5 * time.Second), End: at(4 * time.Second),
		},
		{
			Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:3::1"),
			DstPort: 128 << 8, Proto: 58, // echo request, code 0
			Packets: 5, Bytes: 520, Start: at(20 * time.Second), End: at(15 * time.Second),
		},
		{
			Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("192.0.2.10"),
			Proto: 47, Packets: 7, Bytes: 7000,
		},
	}
}

// onlyFamily returns the flows of one family.
func onlyFamily(flows []Flow, v6 bool) []Flow {
	return slices.DeleteFunc(slices.Clone(flows), func(f Flow) bool { return f.Src.Is4() == v6 })
}

// wantNetFlow returns the flows as a NetFlow or IPFIX collector should
// decode them: zero times read as now, and, if byFamily, the IPv4 flows
// first since each family has its own set.
func wantNetFlow(flows []Flow, now time.Time, byFamily bool) []Flow {
	want := make([]Flow, 0, len(flows))
	if byFamily {
		want = append(onlyFamily(flows, false), onlyFamily(flows, true)...)
	} else {
		want = append(want, flows...)
	}
	for i := range want {
		want[i].Start, want[i].End = want[i].times(now)
	}
	return want
}

// worstFlows returns n flows that make the longest records of every
// format: IPv6 and TCP, with a frame length that sFlow accepts.
func worstFlows(n int) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		flows[i] = Flow{
			Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
			SrcPort: uint16(1024 + i), DstPort: 443, Proto: 6, TCPFlags: 0x10,
			Packets: 1, Bytes: 1500, Start: testNow, End: testNow,
		}
	}
	return flows
}

// ipv4Flows returns n IPv4 UDP flows.
func ipv4Flows(n int) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		flows[i] = Flow{
			Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: netip.MustParseAddr("198.51.100.1"),
			SrcPort: uint16(1024 + i), DstPort: 53, Proto: 17,
			Packets: 1, Bytes: 100, Start: testNow, End: testNow,
		}
	}
	return flows
}

// must returns a function that fails the test if an append method failed
// and returns its buffer otherwise.
func must(t testing.TB) func([]byte, error) []byte {
	t.Helper()
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		return b
	}
}

func TestCeilTime(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"whole second stays", base, base},
		{"fraction rounds up", base.Add(time.Nanosecond), base.Add(time.Second)},
		{"just below next", base.Add(time.Second - 1), base.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(ceilTime(tt.in, time.Second), tt.want); diff != "" {
				t.Errorf("ceilTime (-got +want):\n%s", diff)
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	flows := testFlows()
	v4 := onlyFamily(flows, false)
	tests := []struct {
		name string
		fn   func(dst []byte) ([]byte, error)
	}{
		{"netflow v5", func(dst []byte) ([]byte, error) {
			return (&NetFlowV5{}).AppendData(dst, testNow, v4)
		}},
		{"netflow v9", func(dst []byte) ([]byte, error) {
			return (&NetFlowV9{}).AppendData(dst, testNow, flows)
		}},
		{"ipfix", func(dst []byte) ([]byte, error) {
			return (&IPFIX{}).AppendData(dst, testNow, flows)
		}},
		{"sflow", func(dst []byte) ([]byte, error) {
			return (&SFlowV5{Agent: netip.MustParseAddr("192.0.2.254")}).AppendData(dst, testNow, sflowFlows())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alone := must(t)(tt.fn(nil))
			got := must(t)(tt.fn(slices.Clone(prefix)))
			want := append(slices.Clone(prefix), alone...)
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("append after a prefix (-got +want):\n%s", diff)
			}
		})
	}
}

func TestMaxRecordsPerDatagram(t *testing.T) {
	agent := netip.MustParseAddr("192.0.2.254")
	tests := []struct {
		name string
		max  func(size int) int
		fn   func(flows []Flow) ([]byte, error)
	}{
		{"netflow v5", (&NetFlowV5{}).MaxRecordsPerDatagram, func(flows []Flow) ([]byte, error) {
			return (&NetFlowV5{}).AppendData(nil, testNow, flows)
		}},
		{"netflow v9", (&NetFlowV9{}).MaxRecordsPerDatagram, func(flows []Flow) ([]byte, error) {
			return (&NetFlowV9{}).AppendData(nil, testNow, flows)
		}},
		{"ipfix", (&IPFIX{}).MaxRecordsPerDatagram, func(flows []Flow) ([]byte, error) {
			return (&IPFIX{}).AppendData(nil, testNow, flows)
		}},
		{"sflow", (&SFlowV5{Agent: agent}).MaxRecordsPerDatagram, func(flows []Flow) ([]byte, error) {
			return (&SFlowV5{Agent: agent}).AppendData(nil, testNow, flows)
		}},
	}
	for _, tt := range tests {
		for _, size := range []int{512, DatagramSize, 9000} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, size), func(t *testing.T) {
				n := tt.max(size)
				if n < 1 {
					t.Fatalf("MaxRecordsPerDatagram(%d) = %d", size, n)
				}
				worst := worstFlows(n)
				if tt.name == "netflow v5" {
					worst = ipv4Flows(n)
				}
				// All of the worst family, then the same number with one
				// flow of the other family, which adds a set.
				mixed := append(ipv4Flows(1), worst[1:]...)
				for _, flows := range [][]Flow{worst, mixed} {
					b := must(t)(tt.fn(flows))
					if len(b) > size {
						t.Errorf("%d flows make %d bytes, more than %d", len(flows), len(b), size)
					}
				}
				if n == NetFlowV5MaxRecords {
					return
				}
				more := worstFlows(n + 1)
				if tt.name == "netflow v5" {
					more = ipv4Flows(n + 1)
				}
				b := must(t)(tt.fn(more))
				if len(b) <= size {
					t.Errorf("%d flows still fit in %d bytes (%d): the bound is not tight", n+1, size, len(b))
				}
			})
		}
	}
}

// TestAppendDoesNotAllocate checks the promise of the package: once the
// buffer has room, no append method allocates.
func TestAppendDoesNotAllocate(t *testing.T) {
	flows := testFlows()
	v4 := onlyFamily(flows, false)
	sflowIn := sflowFlows()
	v5 := &NetFlowV5{Boot: testBoot, SamplingMode: 2, SamplingInterval: 100}
	v9 := &NetFlowV9{SourceID: 7, Boot: testBoot}
	ipfix := &IPFIX{ObservationDomain: 7}
	sf := &SFlowV5{Agent: netip.MustParseAddr("2001:db8::fe"), Boot: testBoot, SamplingRate: 1000, IfIndex: 3}
	tests := []struct {
		name string
		fn   func(dst []byte) ([]byte, error)
	}{
		{"netflow v5 data", func(dst []byte) ([]byte, error) { return v5.AppendData(dst, testNow, v4) }},
		{"netflow v9 templates", func(dst []byte) ([]byte, error) { return v9.AppendTemplates(dst, testNow), nil }},
		{"netflow v9 data", func(dst []byte) ([]byte, error) { return v9.AppendData(dst, testNow, flows) }},
		{"netflow v9 options", func(dst []byte) ([]byte, error) { return v9.AppendSamplingOptions(dst, testNow, 100), nil }},
		{"ipfix templates", func(dst []byte) ([]byte, error) { return ipfix.AppendTemplates(dst, testNow), nil }},
		{"ipfix data", func(dst []byte) ([]byte, error) { return ipfix.AppendData(dst, testNow, flows) }},
		{"ipfix options", func(dst []byte) ([]byte, error) { return ipfix.AppendSamplingOptions(dst, testNow, 100), nil }},
		{"sflow data", func(dst []byte) ([]byte, error) { return sf.AppendData(dst, testNow, sflowIn) }},
		{"sflow counters", func(dst []byte) ([]byte, error) {
			return sf.AppendCounters(dst, testNow, IfCounters{Speed: 1e10, InOctets: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, 0, 65536)
			var err error
			allocs := testing.AllocsPerRun(100, func() {
				buf, err = tt.fn(buf[:0])
			})
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			if allocs != 0 {
				t.Errorf("append allocated %v times per run, want 0", allocs)
			}
		})
	}
}
