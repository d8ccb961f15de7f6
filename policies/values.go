package policies

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Expression helpers. Each returns ok=false when the attribute is absent
// (the returned range then has no file name) or has an error, which it
// records.

func present(e hcl.Expression) bool {
	if e == nil {
		return false
	}
	v, diags := e.Value(nil)
	return diags.HasErrors() || !v.IsNull()
}

func (c *compiler) value(e hcl.Expression) (cty.Value, hcl.Range, bool) {
	if !present(e) {
		return cty.NilVal, hcl.Range{}, false
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		c.diags = append(c.diags, diags...)
		return cty.NilVal, e.Range(), false
	}
	if !v.IsWhollyKnown() {
		c.errorf(e.Range(), "Invalid value", "the value must be a constant")
		return cty.NilVal, e.Range(), false
	}
	return v, e.Range(), true
}

func (c *compiler) str(e hcl.Expression) (string, hcl.Range, bool) {
	v, rng, ok := c.value(e)
	if !ok {
		return "", rng, false
	}
	if v.Type() != cty.String {
		c.errorf(rng, "Invalid value", "expected a string in double quotes")
		return "", rng, false
	}
	return v.AsString(), rng, true
}

type strItem struct {
	s   string
	rng hcl.Range
}

func (c *compiler) strList(e hcl.Expression) ([]strItem, bool) {
	if !present(e) {
		return nil, false
	}
	exprs, diags := hcl.ExprList(e)
	if diags.HasErrors() {
		c.errorf(e.Range(), "Invalid value", "expected a list of strings, such as [\"a\", \"b\"]")
		return nil, false
	}
	out := make([]strItem, 0, len(exprs))
	for _, x := range exprs {
		s, rng, ok := c.str(x)
		if ok {
			out = append(out, strItem{s, rng})
		}
	}
	return out, true
}

func (c *compiler) uintRange(e hcl.Expression, lo, hi uint64, name string) (uint64, hcl.Range, bool) {
	v, rng, ok := c.value(e)
	if !ok {
		return 0, rng, false
	}
	if v.Type() != cty.Number {
		c.errorf(rng, "Invalid "+name, "expected a whole number from %d to %d", lo, hi)
		return 0, rng, false
	}
	bf := v.AsBigFloat()
	u, acc := bf.Uint64()
	if !bf.IsInt() || acc != 0 || bf.Sign() < 0 || u < lo || u > hi {
		c.errorf(rng, "Invalid "+name, "%s is out of range; write a whole number from %d to %d", bf.Text('g', 12), lo, hi)
		return 0, rng, false
	}
	return u, rng, true
}

// number decodes a plain number.
func (c *compiler) number(e hcl.Expression) (float64, hcl.Range, bool) {
	v, rng, ok := c.value(e)
	if !ok {
		return 0, rng, false
	}
	if v.Type() != cty.Number {
		c.errorf(rng, "Invalid value", "expected a number, such as 0.9")
		return 0, rng, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, rng, true
}

func (c *compiler) duration(e hcl.Expression) (time.Duration, hcl.Range, bool) {
	s, rng, ok := c.str(e)
	if !ok {
		return 0, rng, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		c.errorf(rng, "Invalid duration", "%q is not a duration; write a number with a unit, such as \"500ms\", \"30s\", \"10m\" or \"1h\"", s)
		return 0, rng, false
	}
	return d, rng, true
}

func (c *compiler) addr(e hcl.Expression) (netip.Addr, hcl.Range, bool) {
	s, rng, ok := c.str(e)
	if !ok {
		return netip.Addr{}, rng, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		c.errorf(rng, "Invalid address", "%q is not an IP address; write one such as \"192.0.2.1\" or \"2001:db8::1\"", s)
		return netip.Addr{}, rng, false
	}
	return a.Unmap(), rng, true
}

func (c *compiler) addrPort(e hcl.Expression, required bool) (netip.AddrPort, hcl.Range, bool) {
	s, rng, ok := c.str(e)
	if !ok {
		if required && rng.Filename == "" {
			c.errorf(e.Range(), "Missing listen", "set the address to listen on, such as listen = \"127.0.0.1:2055\"")
		}
		return netip.AddrPort{}, rng, false
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		c.errorf(rng, "Invalid listen address", "%q is not address:port; write one such as \"127.0.0.1:2055\" or \"[::]:6343\"", s)
		return netip.AddrPort{}, rng, false
	}
	return ap, rng, true
}

func (c *compiler) size(e hcl.Expression) (uint64, hcl.Range, bool) {
	v, rng, ok := c.value(e)
	if !ok {
		return 0, rng, false
	}
	if v.Type() == cty.Number {
		return c.uintRange(e, 1, 1<<31-1, "size")
	}
	if v.Type() != cty.String {
		c.errorf(rng, "Invalid size", "expected bytes, such as 33554432 or \"32MiB\"")
		return 0, rng, false
	}
	n, err := ParseSize(v.AsString())
	if err != nil || n == 0 || n > 1<<31-1 {
		c.errorf(rng, "Invalid size", "%q is not a size; write a number with KiB, MiB or GiB, such as \"32MiB\"", v.AsString())
		return 0, rng, false
	}
	return n, rng, true
}

// rate decodes a rate: a plain number, or a string with a unit. For pps:
// "pps", "kpps", "Mpps"; for bps: "bps", "kbps", "Mbps", "Gbps".
func (c *compiler) rate(e hcl.Expression, unit string) (uint64, hcl.Range, bool) {
	v, rng, ok := c.value(e)
	if !ok {
		return 0, rng, false
	}
	if v.Type() == cty.Number {
		return c.uintRange(e, 1, 1<<62, unit)
	}
	if v.Type() != cty.String {
		c.errorf(rng, "Invalid rate", "expected a number or a string with a unit, such as \"200k%s\"", unit)
		return 0, rng, false
	}
	n, err := ParseRate(v.AsString(), unit)
	if err != nil {
		c.errorf(rng, "Invalid rate", "%v; write a number with a unit, such as \"200k%s\" or \"1.5M%s\"", err, unit, unit)
		return 0, rng, false
	}
	return n, rng, true
}

// ParseRate parses "200kpps", "1.5Gbps" and the like for the given base
// unit ("pps" or "bps"). SI prefixes k, M, G, T multiply by powers of 1000.
func ParseRate(s, unit string) (uint64, error) {
	t := strings.TrimSpace(s)
	if !strings.HasSuffix(strings.ToLower(t), unit) {
		return 0, fmt.Errorf("%q does not end in %s", s, unit)
	}
	t = strings.TrimSpace(t[:len(t)-len(unit)])
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:n-1]
		case 'M':
			mult, t = 1e6, t[:n-1]
		case 'G':
			mult, t = 1e9, t[:n-1]
		case 'T':
			mult, t = 1e12, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f <= 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a positive rate", s)
	}
	return uint64(f * mult), nil
}

// ParseSize parses a byte size with an optional binary unit: "4096",
// "512KiB", "32MiB", "1GiB".
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

// ParseCommunity parses a standard community "ASN:value".
func ParseCommunity(s string) (Community, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q has no colon", s)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("community %q: parts must be numbers from 0 to 65535", s)
	}
	return Community(a<<16 | b), nil
}

// String formats the community as ASN:value.
func (c Community) String() string {
	return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xffff)
}
