// Read-only views of the tracked hosts: one host's rates, and the busiest.

package detect

import "sort"

// HostRates are a host's smoothed rates.
type HostRates struct {
	Host
	Hostgroup       string
	PPS, BPS, Flows float64
	BasePPS         float64
	Attack          bool
}

// Rates returns the smoothed rates of a tracked host.
func (e *Engine) Rates(k Host) (HostRates, bool) {
	k.Addr = k.Addr.Unmap()
	key := keyOf(k.Addr)
	s := &e.shards[keyHash(key, e.hseed)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[k.Direction].get(key)
	if h == nil {
		return HostRates{}, false
	}
	return hostRates(k, h), true
}

func hostRates(k Host, h *host) HostRates {
	return HostRates{Host: k, Hostgroup: h.entry.group.name, PPS: float64(h.r.pps[clsTotal]), BPS: float64(h.r.bps[clsTotal]),
		Flows: float64(h.r.flows), BasePPS: float64(h.basePPS), Attack: h.atk() != nil}
}

// Top returns the n busiest hosts in a direction by "pps", "bps" or
// "flows", busiest first. It walks every host: call it at human rates (a
// live view, an API request), not per record.
func (e *Engine) Top(n int, by string, dir Direction) []HostRates {
	if n <= 0 {
		return nil
	}
	val := func(r *HostRates) float64 {
		switch by {
		case "bps":
			return r.BPS
		case "flows":
			return r.Flows
		}
		return r.PPS
	}
	top := make([]HostRates, 0, n+1)
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		tab := &s.hosts[dir]
		for j := uint32(0); j < tab.next; j++ {
			h := tab.at(j)
			if h.entry == nil {
				continue
			}
			r := hostRates(Host{h.key.addr(), dir}, h)
			if len(top) == n && val(&r) <= val(&top[n-1]) {
				continue
			}
			k := sort.Search(len(top), func(i int) bool { return val(&top[i]) < val(&r) })
			top = append(top, HostRates{})
			copy(top[k+1:], top[k:])
			top[k] = r
			if len(top) > n {
				top = top[:n]
			}
		}
		s.mu.Unlock()
	}
	return top
}
