// The host table: per-host state in slab chunks, indexed by address in
// an open-addressing table of its own, one per shard and direction.

package detect

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// host holds one host's counters in one direction: 192 bytes in a slab
// chunk, plus 8 to 21 in the index.
type host struct {
	// cur and x are what ingestion counts into: together they fill the
	// first 64-byte cache line of the host (hosts are 192 bytes in chunks
	// aligned to 64 bytes); the lookup reads key, on the next line.
	cur     counters
	x       *extra       // only for suspect or attacked hosts
	key     addrKey      // the table's index key
	entry   *prefixEntry // nil for a free slot
	r       rates
	fast    fastRates
	basePPS float32
	baseBPS float32
	quiet   uint16 // ticks without traffic (saturating)
	_       [26]byte
}

// hostSize keeps host a multiple of the cache line (checked by a test).
const hostSize = 192

func (h *host) atk() *attack {
	if h.x == nil {
		return nil
	}
	return h.x.attack
}

func (h *host) sk() *sketch {
	if h.x == nil {
		return nil
	}
	return h.x.sketch
}

func (h *host) setAttack(a *attack) {
	if h.x == nil {
		h.x = &extra{}
	}
	h.x.attack = a
	if a == nil && h.x.sketch == nil {
		h.x = nil
	}
}

func (h *host) setSketch(s *sketch) {
	if h.x == nil {
		h.x = &extra{}
	}
	h.x.sketch = s
	if s == nil {
		h.x.win = nil
		if h.x.attack == nil {
			h.x = nil
		}
	}
}

func (h *host) win() *window {
	if h.x == nil {
		return nil
	}
	return h.x.win
}

// extra is the state only suspect or attacked hosts have. A host has a
// confidence window while it has a sketch.
type extra struct {
	attack *attack
	sketch *sketch
	win    *window
}

// addrKey is an address as two words: the index key of a host table.
type addrKey [2]uint64

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return addrKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (k addrKey) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k[0])
	binary.BigEndian.PutUint64(b[8:], k[1])
	return netip.AddrFrom16(b).Unmap()
}

// mix is a keyed 64-bit mixer (the multiply-fold of wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// keyHash is the keyed hash of a host key: its low bits pick the shard,
// the bits above them the home slot in the shard's table.
func keyHash(k addrKey, seed uint64) uint64 { return mix(k[0]^seed, k[1]) }

// chunkSize is the number of hosts per slab chunk.
const chunkSize = 64

// hostTable holds the hosts of one shard and direction in fixed-size
// chunks, so that the tick walks memory in order and a host costs no
// allocation of its own, with an open-addressing index (linear probing,
// backward-shift deletion, load at most 3/4) from address to host. An
// index slot is 8 bytes: 32 bits of the key's hash as a tag and the host
// index. A lookup reads the slot, then the host only where the tag
// matches, and compares the whole key there; the key and the counters
// are on neighbouring cache lines of the host, fetched together. The
// index costs about 16 bytes per host where a Go map takes about 58.
type hostTable struct {
	seed   uint64
	slots  []uint64 // tag<<32 | host index + 1; 0 is empty
	count  int
	chunks [][]host
	next   uint32   // host indexes below next have been handed out
	free   []uint32 // released host indexes, reused first
}

func (t *hostTable) at(i uint32) *host { return &t.chunks[i/chunkSize][i%chunkSize] }

// home is the first index position for a key of hash h. The low bits of
// h pick the shard and are the same for every key of a table; the high
// 32 bits are the tag.
func (t *hostTable) home(h uint64) int { return int(h/numShards) & (len(t.slots) - 1) }

// peek returns the index slot at the home of hash h, or 0.
func (t *hostTable) peek(h uint64) uint64 {
	if len(t.slots) == 0 {
		return 0
	}
	return t.slots[t.home(h)]
}

func slotOf(h uint64, hi uint32) uint64 { return h&^(1<<32-1) | uint64(hi+1) }

// find returns the index position of k and whether it is there.
func (t *hostTable) find(k addrKey) (int, bool) { return t.findHashed(k, keyHash(k, t.seed)) }

// findHashed is find for a key whose hash h the caller has.
func (t *hostTable) findHashed(k addrKey, h uint64) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := len(t.slots) - 1
	tag := h >> 32
	for i := t.home(h); ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl == 0 {
			return i, false
		}
		if sl>>32 == tag && t.at(uint32(sl)-1).key == k {
			return i, true
		}
	}
}

func (t *hostTable) get(k addrKey) *host { return t.getHashed(k, keyHash(k, t.seed)) }

func (t *hostTable) getHashed(k addrKey, h uint64) *host {
	i, ok := t.findHashed(k, h)
	if !ok {
		return nil
	}
	return t.at(uint32(t.slots[i]) - 1)
}

// emptyFor returns the first empty index position for a key of hash h.
func (t *hostTable) emptyFor(h uint64) int {
	mask := len(t.slots) - 1
	i := t.home(h)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	return i
}

func (t *hostTable) grow() {
	old := t.slots
	t.slots = make([]uint64, max(64, 2*len(old)))
	for _, sl := range old {
		if sl != 0 {
			h := keyHash(t.at(uint32(sl)-1).key, t.seed)
			t.slots[t.emptyFor(h)] = sl
		}
	}
}

func (t *hostTable) insert(k addrKey, pe *prefixEntry) *host {
	return t.insertHashed(k, keyHash(k, t.seed), pe)
}

// insertHashed adds a host for k, which is not in the table, whose hash
// h the caller has.
func (t *hostTable) insertHashed(k addrKey, h uint64, pe *prefixEntry) *host {
	if (t.count+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	var hi uint32
	if n := len(t.free); n > 0 {
		hi, t.free = t.free[n-1], t.free[:n-1]
	} else {
		hi = t.next
		t.next++
		if int(hi/chunkSize) == len(t.chunks) {
			t.chunks = append(t.chunks, make([]host, chunkSize))
		}
	}
	t.slots[t.emptyFor(h)] = slotOf(h, hi)
	t.count++
	hp := t.at(hi)
	*hp = host{entry: pe, key: k}
	return hp
}

func (t *hostTable) remove(hi uint32) {
	h := t.at(hi)
	i, ok := t.find(h.key)
	*h = host{}
	t.free = append(t.free, hi)
	if !ok {
		return
	}
	t.count--
	mask := len(t.slots) - 1
	// Backward-shift: move later entries of the probe run into the gap.
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := t.home(keyHash(t.at(uint32(t.slots[j])-1).key, t.seed))
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
}
