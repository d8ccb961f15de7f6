package policies

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// The HCL schema. Attributes whose values need more than a type check are
// decoded as expressions so that errors can point at the value itself.
type fileSchema struct {
	Log        *logBlock        `hcl:"log,block"`
	Detection  *detectionBlock  `hcl:"detection,block"`
	Sources    []sourcesBlock   `hcl:"sources,block"`
	BGP        *bgpBlock        `hcl:"bgp,block"`
	Hostgroups []hostgroupBlock `hcl:"hostgroup,block"`
}

type logBlock struct {
	Level     hcl.Expression `hcl:"level"`
	Format    hcl.Expression `hcl:"format"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type detectionBlock struct {
	Tick      hcl.Expression `hcl:"tick"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type sourcesBlock struct {
	NetFlow []listenerBlock `hcl:"netflow,block"`
	SFlow   []listenerBlock `hcl:"sflow,block"`
}

type listenerBlock struct {
	Name            string          `hcl:"name,label"`
	Listen          hcl.Expression  `hcl:"listen"`
	ReceiveBuffer   hcl.Expression  `hcl:"receive_buffer"`
	Workers         hcl.Expression  `hcl:"workers"`
	QueueSize       hcl.Expression  `hcl:"queue_size"`
	DefaultSampling hcl.Expression  `hcl:"sampling_rate"`
	Exporters       []exporterBlock `hcl:"exporter,block"`
	DeclRange       hcl.Range       `hcl:",def_range"`
}

type exporterBlock struct {
	Address   string         `hcl:"address,label"`
	Sampling  hcl.Expression `hcl:"sampling_rate"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type bgpBlock struct {
	ASN         hcl.Expression  `hcl:"asn"`
	RouterID    hcl.Expression  `hcl:"router_id"`
	Listen      hcl.Expression  `hcl:"listen"`
	DryRun      *bool           `hcl:"dry_run"`
	Communities hcl.Expression  `hcl:"rtbh_communities"`
	NextHopIPv4 hcl.Expression  `hcl:"rtbh_next_hop_ipv4"`
	NextHopIPv6 hcl.Expression  `hcl:"rtbh_next_hop_ipv6"`
	Neighbors   []neighborBlock `hcl:"neighbor,block"`
	DeclRange   hcl.Range       `hcl:",def_range"`
}

type neighborBlock struct {
	Name         string         `hcl:"name,label"`
	Address      hcl.Expression `hcl:"address"`
	ASN          hcl.Expression `hcl:"asn"`
	Port         hcl.Expression `hcl:"port"`
	LocalAddress hcl.Expression `hcl:"local_address"`
	Passive      *bool          `hcl:"passive"`
	Password     *string        `hcl:"password"`
	Multihop     hcl.Expression `hcl:"multihop"`
	Families     hcl.Expression `hcl:"families"`
	DeclRange    hcl.Range      `hcl:",def_range"`
}

type hostgroupBlock struct {
	Name       string           `hcl:"name,label"`
	Prefixes   hcl.Expression   `hcl:"prefixes"`
	Thresholds []thresholdBlock `hcl:"threshold,block"`
	EWMA       hcl.Expression   `hcl:"ewma"`
	BanTime    hcl.Expression   `hcl:"ban_time"`
	DeclRange  hcl.Range        `hcl:",def_range"`
}

type thresholdBlock struct {
	Direction string         `hcl:"direction,label"`
	PPS       hcl.Expression `hcl:"pps"`
	BPS       hcl.Expression `hcl:"bps"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

// Defaults.
const (
	DefaultTick    = time.Second
	MinTick        = 100 * time.Millisecond
	DefaultEWMA    = time.Second
	DefaultBanTime = 10 * time.Minute
	DefaultBGPPort = 179
)

// Error is a list of configuration errors, each with its position.
type Error struct {
	Diags hcl.Diagnostics
}

// Error formats every error as file:line:col: message, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(FormatDiagnostic(d))
	}
	return b.String()
}

// FormatDiagnostic renders d as "file:line:col: summary: detail".
func FormatDiagnostic(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Load reads path, a file or a directory whose *.hcl files are merged in
// name order, and returns the compiled policy. Any error, in any file,
// fails the whole load; the returned error is an *Error listing them all
// unless the path itself cannot be read.
func Load(path string) (*Policy, error) {
	files, err := configFiles(path)
	if err != nil {
		return nil, err
	}
	srcs := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		srcs[f] = b
	}
	return Parse(files, srcs)
}

func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("config: no *.hcl files in %s", path)
	}
	sort.Strings(files)
	return files, nil
}

// Parse compiles the given files, named in order, from their contents.
func Parse(names []string, srcs map[string][]byte) (*Policy, error) {
	p := hclparse.NewParser()
	c := &compiler{pol: &Policy{Files: names}}
	var parsed []parsedFile
	for _, name := range names {
		f, diags := p.ParseHCL(srcs[name], name)
		c.diags = append(c.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		var fs fileSchema
		diags = gohcl.DecodeBody(f.Body, nil, &fs)
		c.diags = append(c.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		parsed = append(parsed, parsedFile{name: name, schema: &fs})
	}
	if !c.diags.HasErrors() {
		c.compile(parsed)
	}
	if c.diags.HasErrors() {
		return nil, &Error{Diags: onlyErrors(c.diags)}
	}
	return c.pol, nil
}

func onlyErrors(ds hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		if d.Severity == hcl.DiagError {
			out = append(out, d)
		}
	}
	return out
}

type parsedFile struct {
	name   string
	schema *fileSchema
}

type compiler struct {
	pol   *Policy
	diags hcl.Diagnostics
}

func (c *compiler) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// singleton keeps the first of a block that may appear once across all
// files and reports the others.
func singleton[T any](c *compiler, name string, blocks []*T, ranges []hcl.Range) *T {
	if len(blocks) == 0 {
		return nil
	}
	for i := 1; i < len(blocks); i++ {
		c.errorf(ranges[i], "Duplicate "+name+" block",
			"a %s block is already defined at %s; keep one and merge the settings into it", name, rangeString(ranges[0]))
	}
	return blocks[0]
}

func rangeString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (c *compiler) compile(files []parsedFile) {
	var (
		logs       []*logBlock
		logRanges  []hcl.Range
		dets       []*detectionBlock
		detRanges  []hcl.Range
		bgps       []*bgpBlock
		bgpRanges  []hcl.Range
		listeners  []listenerSpec
		hostgroups []*hostgroupBlock
	)
	for _, f := range files {
		s := f.schema
		if s.Log != nil {
			logs, logRanges = append(logs, s.Log), append(logRanges, s.Log.DeclRange)
		}
		if s.Detection != nil {
			dets, detRanges = append(dets, s.Detection), append(detRanges, s.Detection.DeclRange)
		}
		if s.BGP != nil {
			bgps, bgpRanges = append(bgps, s.BGP), append(bgpRanges, s.BGP.DeclRange)
		}
		for i := range s.Sources {
			for j := range s.Sources[i].NetFlow {
				listeners = append(listeners, listenerSpec{"netflow", &s.Sources[i].NetFlow[j]})
			}
			for j := range s.Sources[i].SFlow {
				listeners = append(listeners, listenerSpec{"sflow", &s.Sources[i].SFlow[j]})
			}
		}
		for i := range s.Hostgroups {
			hostgroups = append(hostgroups, &s.Hostgroups[i])
		}
	}
	c.compileLog(singleton(c, "log", logs, logRanges))
	c.compileDetection(singleton(c, "detection", dets, detRanges))
	c.compileListeners(listeners)
	c.compileBGP(singleton(c, "bgp", bgps, bgpRanges))
	c.compileHostgroups(hostgroups)
}

func (c *compiler) compileLog(b *logBlock) {
	c.pol.Log = Log{Level: "info", Format: "text"}
	if b == nil {
		return
	}
	if s, rng, ok := c.str(b.Level); ok {
		s = strings.ToLower(s)
		if !slices.Contains([]string{"trace", "debug", "info", "warn", "error"}, s) {
			c.errorf(rng, "Invalid log level", "%q is not a level; write one of trace, debug, info, warn, error", s)
		}
		c.pol.Log.Level = s
	}
	if s, rng, ok := c.str(b.Format); ok {
		if s != "text" && s != "json" {
			c.errorf(rng, "Invalid log format", "%q is not a format; write \"text\" or \"json\"", s)
		}
		c.pol.Log.Format = s
	}
}

func (c *compiler) compileDetection(b *detectionBlock) {
	c.pol.Detection = Detection{Tick: DefaultTick}
	if b == nil {
		return
	}
	if d, rng, ok := c.duration(b.Tick); ok {
		if d < MinTick || d > time.Minute {
			c.errorf(rng, "Invalid tick", "tick %s is out of range; write a duration from 100ms to 1m, such as \"1s\"", d)
		}
		c.pol.Detection.Tick = d
	}
}

type listenerSpec struct {
	protocol string
	b        *listenerBlock
}

func (c *compiler) compileListeners(specs []listenerSpec) {
	names := map[string]hcl.Range{}
	addrs := map[netip.AddrPort]hcl.Range{}
	for _, s := range specs {
		b := s.b
		if prev, dup := names[b.Name]; dup {
			c.errorf(b.DeclRange, "Duplicate source name", "a source named %q is already defined at %s; give each a distinct name", b.Name, rangeString(prev))
			continue
		}
		names[b.Name] = b.DeclRange
		l := Listener{Name: b.Name, Protocol: s.protocol}
		if ap, rng, ok := c.addrPort(b.Listen, true); ok {
			if prev, dup := addrs[ap]; dup {
				c.errorf(rng, "Duplicate listen address", "%s is already used at %s", ap, rangeString(prev))
			}
			addrs[ap] = rng
			l.Listen = ap
		}
		if n, _, ok := c.size(b.ReceiveBuffer); ok {
			l.ReceiveBuffer = int(n)
		}
		if n, _, ok := c.uintRange(b.Workers, 1, 64, "workers"); ok {
			l.Workers = int(n)
		}
		if n, _, ok := c.uintRange(b.QueueSize, 1, 1<<20, "queue_size"); ok {
			l.QueueSize = int(n)
		}
		if n, _, ok := c.uintRange(b.DefaultSampling, 1, 1<<24, "sampling_rate"); ok {
			l.DefaultSampling = uint32(n)
		}
		for _, e := range b.Exporters {
			a, err := netip.ParseAddr(e.Address)
			if err != nil {
				c.errorf(e.DeclRange, "Invalid exporter address", "%q is not an IP address; write the exporter's source address, such as \"192.0.2.1\"", e.Address)
				continue
			}
			a = a.Unmap()
			if l.Sampling == nil {
				l.Sampling = map[netip.Addr]uint32{}
			}
			if _, dup := l.Sampling[a]; dup {
				c.errorf(e.DeclRange, "Duplicate exporter", "exporter %s is listed twice in source %q", a, b.Name)
			}
			n, rng, ok := c.uintRange(e.Sampling, 1, 1<<24, "sampling_rate")
			if !ok {
				if rng.Filename == "" {
					c.errorf(e.DeclRange, "Missing sampling_rate", "an exporter block sets sampling_rate, such as sampling_rate = 1000")
				}
				continue
			}
			l.Sampling[a] = uint32(n)
		}
		c.pol.Listeners = append(c.pol.Listeners, l)
	}
}

func (c *compiler) compileBGP(b *bgpBlock) {
	if b == nil {
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing bgp block",
			Detail:   "add a bgp block with asn and router_id; neighbours are optional",
			Subject:  &hcl.Range{Filename: c.pol.Files[0], Start: hcl.InitialPos, End: hcl.InitialPos},
		})
		return
	}
	g := &c.pol.BGP
	if n, rng, ok := c.uintRange(b.ASN, 1, 1<<32-1, "asn"); ok {
		g.ASN = uint32(n)
	} else if rng.Filename == "" {
		c.errorf(b.DeclRange, "Missing asn", "set the speaker's AS number, such as asn = 65000")
	}
	if a, rng, ok := c.addr(b.RouterID); ok {
		if !a.Is4() {
			c.errorf(rng, "Invalid router_id", "the router id is an IPv4 address, such as \"192.0.2.1\"")
		}
		g.RouterID = a
	} else if rng.Filename == "" {
		c.errorf(b.DeclRange, "Missing router_id", "set the BGP identifier, an IPv4 address, such as router_id = \"192.0.2.1\"")
	}
	if ap, _, ok := c.addrPort(b.Listen, false); ok {
		g.Listen = ap
	}
	if b.DryRun != nil {
		g.DryRun = *b.DryRun
	}
	if list, ok := c.strList(b.Communities); ok {
		for _, it := range list {
			cm, err := ParseCommunity(it.s)
			if err != nil {
				c.errorf(it.rng, "Invalid community", "%v; write ASN:value with both parts from 0 to 65535, such as \"65000:666\"", err)
				continue
			}
			g.Communities = append(g.Communities, cm)
		}
	}
	if a, rng, ok := c.addr(b.NextHopIPv4); ok {
		if !a.Is4() {
			c.errorf(rng, "Invalid next hop", "rtbh_next_hop_ipv4 must be an IPv4 address")
		}
		g.NextHopIPv4 = a
	}
	if a, rng, ok := c.addr(b.NextHopIPv6); ok {
		if !a.Is6() {
			c.errorf(rng, "Invalid next hop", "rtbh_next_hop_ipv6 must be an IPv6 address")
		}
		g.NextHopIPv6 = a
	}
	names := map[string]hcl.Range{}
	addrs := map[netip.Addr]hcl.Range{}
	for _, nb := range b.Neighbors {
		if prev, dup := names[nb.Name]; dup {
			c.errorf(nb.DeclRange, "Duplicate neighbor", "a neighbor named %q is already defined at %s", nb.Name, rangeString(prev))
			continue
		}
		names[nb.Name] = nb.DeclRange
		n := Neighbor{Name: nb.Name, Port: DefaultBGPPort}
		if a, rng, ok := c.addr(nb.Address); ok {
			if prev, dup := addrs[a]; dup {
				c.errorf(rng, "Duplicate neighbor address", "%s is already a neighbor at %s", a, rangeString(prev))
			}
			addrs[a] = rng
			n.Address = a
		} else if rng.Filename == "" {
			c.errorf(nb.DeclRange, "Missing address", "set the neighbour's address, such as address = \"192.0.2.1\"")
		}
		if v, rng, ok := c.uintRange(nb.ASN, 1, 1<<32-1, "asn"); ok {
			n.ASN = uint32(v)
		} else if rng.Filename == "" {
			c.errorf(nb.DeclRange, "Missing asn", "set the neighbour's AS number, such as asn = 65001")
		}
		if v, _, ok := c.uintRange(nb.Port, 1, 65535, "port"); ok {
			n.Port = uint16(v)
		}
		if a, _, ok := c.addr(nb.LocalAddress); ok {
			n.LocalAddress = a
		}
		if nb.Passive != nil {
			n.Passive = *nb.Passive
		}
		if nb.Password != nil {
			n.Password = *nb.Password
		}
		if v, _, ok := c.uintRange(nb.Multihop, 1, 255, "multihop"); ok {
			n.Multihop = uint8(v)
		}
		if list, ok := c.strList(nb.Families); ok {
			for _, it := range list {
				if !slices.Contains(Families, it.s) {
					c.errorf(it.rng, "Unknown address family", "%q is not supported; write one of %s", it.s, strings.Join(Families, ", "))
					continue
				}
				n.Families = append(n.Families, it.s)
			}
		} else if n.Address.IsValid() {
			if n.Address.Is4() {
				n.Families = []string{"ipv4-unicast"}
			} else {
				n.Families = []string{"ipv6-unicast"}
			}
		}
		g.Neighbors = append(g.Neighbors, n)
	}
}

// Families are the address families a neighbour can negotiate.
var Families = []string{"ipv4-unicast", "ipv6-unicast"}

func (c *compiler) compileHostgroups(blocks []*hostgroupBlock) {
	names := map[string]hcl.Range{}
	prefixes := map[netip.Prefix]struct {
		group string
		rng   hcl.Range
	}{}
	for _, b := range blocks {
		if prev, dup := names[b.Name]; dup {
			c.errorf(b.DeclRange, "Duplicate hostgroup", "hostgroup %q is already defined at %s; rename one or merge them", b.Name, rangeString(prev))
			continue
		}
		names[b.Name] = b.DeclRange
		h := &Hostgroup{Name: b.Name, EWMA: DefaultEWMA, BanTime: DefaultBanTime}
		list, ok := c.strList(b.Prefixes)
		if !ok {
			c.errorf(b.DeclRange, "Missing prefixes", "a hostgroup lists its networks, such as prefixes = [\"203.0.113.0/24\"]")
		}
		for _, it := range list {
			p, err := netip.ParsePrefix(it.s)
			if err != nil {
				c.errorf(it.rng, "Invalid prefix", "%q is not a CIDR prefix; write an address and a length, such as \"203.0.113.0/24\"", it.s)
				continue
			}
			if p.Addr().Is4In6() {
				c.errorf(it.rng, "Invalid prefix", "%q is IPv4-mapped; write the IPv4 prefix itself", it.s)
				continue
			}
			if m := p.Masked(); m != p {
				c.errorf(it.rng, "Prefix has host bits set", "%q has bits set past /%d; write %q", it.s, p.Bits(), m.String())
				continue
			}
			if prev, dup := prefixes[p]; dup {
				c.errorf(it.rng, "Duplicate prefix", "%s is already in hostgroup %q at %s; a prefix belongs to one hostgroup", p, prev.group, rangeString(prev.rng))
				continue
			}
			prefixes[p] = struct {
				group string
				rng   hcl.Range
			}{b.Name, it.rng}
			h.Prefixes = append(h.Prefixes, p)
		}
		seen := map[string]hcl.Range{}
		for _, t := range b.Thresholds {
			if prev, dup := seen[t.Direction]; dup {
				c.errorf(t.DeclRange, "Duplicate threshold", "a %q threshold is already defined at %s", t.Direction, rangeString(prev))
				continue
			}
			seen[t.Direction] = t.DeclRange
			var th *Threshold
			switch t.Direction {
			case "incoming":
				th = &h.Incoming
			case "outgoing":
				th = &h.Outgoing
			default:
				c.errorf(t.DeclRange, "Invalid threshold direction", "%q is not a direction; write threshold \"incoming\" or threshold \"outgoing\"", t.Direction)
				continue
			}
			if v, _, ok := c.rate(t.PPS, "pps"); ok {
				th.PPS = v
			}
			if v, _, ok := c.rate(t.BPS, "bps"); ok {
				th.BPS = v
			}
		}
		if d, rng, ok := c.duration(b.EWMA); ok {
			if d < 100*time.Millisecond || d > time.Hour {
				c.errorf(rng, "Invalid ewma", "time constant %s is out of range; write a duration from 100ms to 1h", d)
			}
			h.EWMA = d
		}
		if d, rng, ok := c.duration(b.BanTime); ok {
			if d < time.Second {
				c.errorf(rng, "Invalid ban_time", "ban time %s is too short; write at least \"1s\", such as \"10m\"", d)
			}
			h.BanTime = d
		}
		c.pol.Hostgroups = append(c.pol.Hostgroups, h)
	}
}

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
