package topics

import (
	"net/netip"
	"testing"

	"github.com/floodgate-ddos/floodgate/sources"
)

// testClassifier: 203.0.113.0/24 is "carpet" (with group limits),
// 198.51.100.0/24 is "hosts" (without).
type testClassifier struct{}

func (testClassifier) Classify(a netip.Addr) (string, bool, bool) {
	switch {
	case netip.MustParsePrefix("203.0.113.0/24").Contains(a):
		return "carpet", true, true
	case netip.MustParsePrefix("198.51.100.0/24").Contains(a):
		return "hosts", false, true
	}
	return "", false, false
}

func TestKeys(t *testing.T) {
	const (
		outside = "192.0.2.1"
		carpet1 = "203.0.113.1"
		carpet2 = "203.0.113.2"
		host1   = "198.51.100.1"
		host2   = "198.51.100.2"
	)
	for _, c := range []struct {
		src, dst string
		want     []string
	}{
		{outside, host1, []string{"incoming h:198.51.100.1"}},
		{host1, outside, []string{"outgoing h:198.51.100.1"}},
		{outside, carpet1, []string{"incoming g:carpet"}},
		{carpet2, outside, []string{"outgoing g:carpet"}},
		{carpet1, carpet2, []string{"both g:carpet"}},
		{host1, host2, []string{"incoming h:198.51.100.2", "outgoing h:198.51.100.1"}},
		{host1, host1, []string{"both h:198.51.100.1"}},
		{host1, carpet1, []string{"incoming g:carpet", "outgoing h:198.51.100.1"}},
		{outside, outside, nil},
	} {
		r := sources.Record{Src: netip.MustParseAddr(c.src), Dst: netip.MustParseAddr(c.dst)}
		keys, n := Keys(&r, testClassifier{})
		var got []string
		for _, k := range keys[:n] {
			got = append(got, k.Side.String()+" "+string(k.Append(nil)))
		}
		if len(got) != len(c.want) || len(got) > 0 && (got[0] != c.want[0] || len(got) > 1 && got[1] != c.want[1]) {
			t.Errorf("%s -> %s: keys %q, want %q", c.src, c.dst, got, c.want)
		}
	}
	r := sources.Record{Src: netip.MustParseAddr(host1), Dst: netip.MustParseAddr(carpet1)}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		keys, n := Keys(&r, testClassifier{})
		for _, k := range keys[:n] {
			buf = k.Append(buf[:0])
		}
	}); n != 0 {
		t.Errorf("%v allocations per record", n)
	}
}
