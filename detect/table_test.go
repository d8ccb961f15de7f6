package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"
)

// TestHostTableAgainstMap runs random inserts and removals against the
// open-addressing table and a Go map and checks they always agree.
func TestHostTableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tab := &hostTable{seed: rng.Uint64()}
	ref := map[addrKey]uint32{} // key -> host index
	pe := &prefixEntry{}
	for op := range 200_000 {
		k := addrKey{0, uint64(rng.IntN(5000))} // small key space: many collisions and reuse
		if h := tab.get(k); (h != nil) != (ref[k] != 0) {
			t.Fatalf("op %d: get(%v) = %v, reference has %v", op, k, h != nil, ref[k] != 0)
		}
		if rng.IntN(3) == 0 {
			if hi, ok := ref[k]; ok && hi != 0 {
				tab.remove(hi - 1)
				delete(ref, k)
			}
			continue
		}
		if tab.get(k) == nil {
			h := tab.insert(k, pe)
			i, _ := tab.find(k)
			ref[k] = uint32(tab.slots[i])
			if h.key != k || h.entry != pe {
				t.Fatalf("inserted host %+v", h)
			}
		}
	}
	if tab.count != len(ref) {
		t.Fatalf("count %d, reference %d", tab.count, len(ref))
	}
	for k, hi := range ref {
		if h := tab.get(k); h == nil || h != tab.at(hi-1) || h.key != k {
			t.Fatalf("lost %v", k)
		}
	}
	if l := len(tab.slots); tab.count*4 > l*3 {
		t.Errorf("load %d/%d over 3/4", tab.count, l)
	}
}

// TestHostLayout: a host is three cache lines and ingestion touches only
// the first (see the host type).
func TestHostLayout(t *testing.T) {
	var h host
	if unsafe.Sizeof(h) != hostSize || hostSize%64 != 0 {
		t.Errorf("host is %d bytes, want %d", unsafe.Sizeof(h), hostSize)
	}
	if end := unsafe.Offsetof(h.x) + unsafe.Sizeof(h.x); unsafe.Offsetof(h.cur) != 0 || end > 64 {
		t.Errorf("cur and x end at byte %d, want within the first 64", end)
	}
}

// TestKeyOf: IPv4 addresses take the IPv4-mapped key and every key turns
// back into its address.
func TestKeyOf(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::ffff:192.0.2.1", "::"} {
		a := netip.MustParseAddr(s)
		k := keyOf(a)
		if k != keyOf(netip.AddrFrom16(a.As16())) && !a.Is4In6() {
			t.Errorf("%s: key %x differs from its 16-byte form", s, k)
		}
		if got := k.addr(); got != a.Unmap() {
			t.Errorf("%s: key %x gives back %s", s, k, got)
		}
	}
}
