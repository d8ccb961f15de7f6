package policies

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/sources/mirror"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
)

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
		logs, dets, bgps, mits, defs []hcl.Range
		logB                         []*logBlock
		detB                         []*detectionBlock
		bgpB                         []*bgpBlock
		mitB                         []*mitigationBlock
		defB                         []*groupBody
		apiB                         []*apiBlock
		apis, metr                   []hcl.Range
		metB                         []*metricsBlock
		hookBs                       []hooksBlock
		daemonB                      []*daemonBlock
		kafkaB                       []*kafkaBlock
		kafkas                       []hcl.Range
		daemons                      []hcl.Range
		listeners                    []listenerSpec
		mirrors                      []mirrorBlock
		pcaps                        []pcapBlock
		kafkaSources                 []kafkaSourceBlock
		hostgroups                   []*hostgroupBlock
	)
	for _, f := range files {
		s := f.schema
		if s.Log != nil {
			logB, logs = append(logB, s.Log), append(logs, s.Log.DeclRange)
		}
		if s.Detection != nil {
			detB, dets = append(detB, s.Detection), append(dets, s.Detection.DeclRange)
		}
		if s.BGP != nil {
			bgpB, bgps = append(bgpB, s.BGP), append(bgps, s.BGP.DeclRange)
		}
		if s.Mitigation != nil {
			mitB, mits = append(mitB, s.Mitigation), append(mits, s.Mitigation.DeclRange)
		}
		if s.API != nil {
			apiB, apis = append(apiB, s.API), append(apis, s.API.DeclRange)
		}
		if s.Metrics != nil {
			metB, metr = append(metB, s.Metrics), append(metr, s.Metrics.DeclRange)
		}
		hookBs = append(hookBs, s.Hooks...)
		if s.Daemon != nil {
			daemonB, daemons = append(daemonB, s.Daemon), append(daemons, s.Daemon.DeclRange)
		}
		if s.Kafka != nil {
			kafkaB, kafkas = append(kafkaB, s.Kafka), append(kafkas, s.Kafka.DeclRange)
		}
		if s.Defaults != nil {
			defB, defs = append(defB, s.Defaults), append(defs, s.Defaults.DeclRange)
		}
		for i := range s.Sources {
			for j := range s.Sources[i].NetFlow {
				listeners = append(listeners, listenerSpec{"netflow", &s.Sources[i].NetFlow[j]})
			}
			for j := range s.Sources[i].SFlow {
				listeners = append(listeners, listenerSpec{"sflow", &s.Sources[i].SFlow[j]})
			}
			mirrors = append(mirrors, s.Sources[i].Mirror...)
			pcaps = append(pcaps, s.Sources[i].Pcap...)
			kafkaSources = append(kafkaSources, s.Sources[i].Kafka...)
		}
		for i := range s.Hostgroups {
			hostgroups = append(hostgroups, &s.Hostgroups[i])
		}
	}
	c.compileLog(singleton(c, "log", logB, logs))
	c.compileDetection(singleton(c, "detection", detB, dets))
	names := c.compileListeners(listeners)
	c.compileMirrors(mirrors, names)
	c.compilePcaps(pcaps, names)
	c.compileBGP(singleton(c, "bgp", bgpB, bgps))
	c.compileMitigation(singleton(c, "mitigation", mitB, mits))
	c.compileAPI(singleton(c, "api", apiB, apis), singleton(c, "metrics", metB, metr))
	c.compileHooks(hookBs)
	c.compileDaemon(singleton(c, "daemon", daemonB, daemons))
	kafka := singleton(c, "kafka", kafkaB, kafkas)
	c.compileKafka(kafka)
	c.compileKafkaSources(kafkaSources, names, kafka)
	c.compileHostgroups(singleton(c, "defaults", defB, defs), hostgroups)
}

func (c *compiler) compileDaemon(b *daemonBlock) {
	c.pol.Daemon = Daemon{ShutdownTimeout: DefaultShutdownTimeout}
	if b == nil {
		return
	}
	if d, rng, ok := c.duration(b.ShutdownTimeout); ok {
		if d < time.Second || d > 10*time.Minute {
			c.errorf(rng, "Invalid shutdown_timeout", "shutdown_timeout %s is out of range; write a duration from 1s to 10m, such as \"10s\"", d)
		}
		c.pol.Daemon.ShutdownTimeout = d
	}
}

func (c *compiler) compileMitigation(b *mitigationBlock) {
	m := &c.pol.Mitigation
	*m = Mitigation{MaxActive: DefaultMaxActive, StateFile: DefaultStateFile}
	if b == nil {
		return
	}
	if b.DryRun != nil {
		m.DryRun = *b.DryRun
	}
	if b.WithdrawOnShutdown != nil {
		m.WithdrawOnShutdown = *b.WithdrawOnShutdown
	}
	if n, _, ok := c.uintRange(b.MaxActive, 1, 1_000_000, "max_active"); ok {
		m.MaxActive = int(n)
	}
	if b.StateFile != nil {
		if *b.StateFile == "" {
			c.errorf(b.DeclRange, "Invalid state_file", "state_file names the file that keeps active mitigations across restarts, such as \"/var/lib/floodgate/state.db\"")
		}
		m.StateFile = *b.StateFile
	}
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
	c.pol.Detection = Detection{Tick: DefaultTick, Confidence: DefaultConfidence, BurstFactor: DefaultBurstFactor, BurstEWMA: DefaultBurstEWMA, Window: DefaultWindow}
	if b == nil {
		return
	}
	if d, rng, ok := c.duration(b.Tick); ok {
		if d < MinTick || d > time.Minute {
			c.errorf(rng, "Invalid tick", "tick %s is out of range; write a duration from 100ms to 1m, such as \"1s\"", d)
		}
		c.pol.Detection.Tick = d
	}
	if v, rng, ok := c.number(b.Confidence); ok {
		if !(v >= 0.5 && v <= 0.999999) {
			c.errorf(rng, "Invalid confidence", "confidence %g is out of range; write a probability from 0.5 to 0.999999, such as 0.999", v)
		}
		c.pol.Detection.Confidence = v
	}
	if v, rng, ok := c.number(b.BurstFactor); ok {
		if v != 0 && !(v >= 1.5 && v <= 100) {
			c.errorf(rng, "Invalid burst_factor", "burst_factor %g is out of range; write 0 (no fast path) or a factor from 1.5 to 100, such as 2.5", v)
		}
		c.pol.Detection.BurstFactor = v
	}
	if d, rng, ok := c.duration(b.BurstEWMA); ok {
		if d < MinTick || d > 10*time.Second {
			c.errorf(rng, "Invalid burst_ewma", "burst_ewma %s is out of range; write a duration from 100ms to 10s, such as \"200ms\"", d)
		}
		c.pol.Detection.BurstEWMA = d
	}
	if d, rng, ok := c.duration(b.Window); ok {
		if d < time.Second || d > time.Minute || d < 2*c.pol.Detection.Tick {
			c.errorf(rng, "Invalid window", "window %s is out of range; write a duration from 1s to 1m and at least two ticks, such as \"3s\"", d)
		}
		c.pol.Detection.Window = d
	}
}

type listenerSpec struct {
	protocol string
	b        *listenerBlock
}

func (c *compiler) compileListeners(specs []listenerSpec) map[string]hcl.Range {
	names := map[string]hcl.Range{}
	addrs := map[netip.AddrPort]hcl.Range{}
	for _, s := range specs {
		b := s.b
		if prev, dup := names[b.Name]; dup {
			c.errorf(b.DeclRange, "Duplicate source name", "a source named %q is already defined at %s; give each a distinct name", b.Name, rangeString(prev))
			continue
		}
		names[b.Name] = b.DeclRange
		l := flow.DefaultListenerConfig(flow.Protocol(s.protocol))
		l.Name = b.Name
		if ap, rng, ok := c.addrPort(b.Listen, true); ok {
			if prev, dup := addrs[ap]; dup {
				c.errorf(rng, "Duplicate listen address", "%s is already used at %s", ap, rangeString(prev))
			}
			addrs[ap] = rng
			l.Listen = ap.String()
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
		if list, ok := c.strList(b.Allowed); ok {
			for _, it := range list {
				if p, ok := c.prefix(it); ok {
					l.AllowedExporters = append(l.AllowedExporters, p)
				}
			}
		}
		if n, _, ok := c.uintRange(b.MaxExporters, 1, 1<<20, "max_exporters"); ok {
			l.MaxExporters = int(n)
		}
		if d, _, ok := c.duration(b.ExporterIdle); ok {
			l.ExporterIdle = d
		}
		if n, _, ok := c.uintRange(b.MaxTemplates, 1, 1<<16, "max_templates"); ok {
			l.MaxTemplates = int(n)
		}
		if d, _, ok := c.duration(b.TemplateTTL); ok {
			l.TemplateTTL = d
		}
		if n, _, ok := c.uintRange(b.MaxTemplateFlds, 1024, 1<<28, "max_template_fields"); ok {
			l.MaxTemplateFields = int(n)
		}
		if n, _, ok := c.rate(b.MaxRecordPPS, "pps"); ok {
			l.MaxRecordPPS = float64(n)
		}
		if n, _, ok := c.rate(b.MaxRecordBPS, "bps"); ok {
			l.MaxRecordBPS = float64(n)
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
	return names
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
		n.MaxFlowSpec = DefaultMaxFlowSpec
		if v, _, ok := c.uintRange(nb.MaxFlowSpec, 1, 1_000_000, "max_flowspec_rules"); ok {
			n.MaxFlowSpec = int(v)
		}
		n.Announce = []string{KindRTBH, KindFlowSpec}
		if list, ok := c.strList(nb.Announce); ok {
			n.Announce = nil
			for _, it := range list {
				if !slices.Contains([]string{KindRTBH, KindFlowSpec}, it.s) {
					c.errorf(it.rng, "Unknown announcement kind", "%q is not a kind; write \"rtbh\" or \"flowspec\"", it.s)
					continue
				}
				n.Announce = append(n.Announce, it.s)
			}
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
			n.Families = defaultFamilies(n.Address, n.Announce)
		}
		g.Neighbors = append(g.Neighbors, n)
	}
	g.GracefulRestart = c.compileGR(b.GR)
}

func (c *compiler) compileGR(bs []grBlock) GracefulRestart {
	gr := DefaultGracefulRestart()
	if len(bs) == 0 {
		return gr
	}
	for _, extra := range bs[1:] {
		c.errorf(extra.DeclRange, "Duplicate graceful_restart block", "the bgp block takes one graceful_restart block; the first is at %s", rangeString(bs[0].DeclRange))
	}
	b := bs[0]
	if b.Enabled != nil {
		gr.Enabled = *b.Enabled
	}
	if b.Notification != nil {
		gr.Notification = *b.Notification
	}
	if b.LongLived != nil {
		gr.LongLived = *b.LongLived
	}
	within := func(e hcl.Expression, name string, lo, hi time.Duration, dst *time.Duration) {
		d, rng, ok := c.duration(e)
		if !ok {
			return
		}
		if d < lo || d > hi || d%time.Second != 0 {
			c.errorf(rng, "Invalid "+name, "%s %s is out of range; write whole seconds from %s to %s", name, d, lo, hi)
			return
		}
		*dst = d
	}
	within(b.RestartTime, "restart_time", time.Second, 4095*time.Second, &gr.RestartTime)
	within(b.DeferralTime, "deferral_time", time.Second, 10*time.Minute, &gr.DeferralTime)
	// 24 bits of seconds on the wire.
	within(b.LongLivedTime, "long_lived_time", time.Second, (1<<24-1)*time.Second, &gr.LongLivedTime)
	return gr
}

// Announcement kinds a neighbour can receive.
const (
	KindRTBH     = "rtbh"
	KindFlowSpec = "flowspec"
)

// Families are the address families a neighbour can negotiate.
var Families = []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}

// defaultFamilies derives a neighbour's families from what it is sent: RTBH
// in the unicast family of the session (an IPv6 route over an IPv4 session
// would get an IPv4-mapped next hop that routers reject), FlowSpec in both
// families (FlowSpec has no next hop).
func defaultFamilies(addr netip.Addr, kinds []string) []string {
	var out []string
	if slices.Contains(kinds, KindRTBH) {
		if addr.Is4() {
			out = append(out, "ipv4-unicast")
		} else {
			out = append(out, "ipv6-unicast")
		}
	}
	if slices.Contains(kinds, KindFlowSpec) {
		out = append(out, "ipv4-flowspec", "ipv6-flowspec")
	}
	return out
}

func (c *compiler) compileAPI(a *apiBlock, m *metricsBlock) {
	c.pol.API = API{Socket: DefaultAPISocket}
	if a != nil {
		if a.Socket != nil {
			c.pol.API.Socket = *a.Socket
		}
		if a.Token != nil {
			c.pol.API.Token = *a.Token
		}
		if ap, rng, ok := c.addrPort(a.Listen, false); ok {
			c.pol.API.Listen = ap
			if !ap.Addr().IsLoopback() && c.pol.API.Token == "" {
				c.errorf(rng, "API without a token", "the API on %s is reachable from the network: set token (a long random string) or listen on loopback", ap)
			}
		}
		if c.pol.API.Token != "" && len(c.pol.API.Token) < 16 {
			c.errorf(a.DeclRange, "Weak API token", "the token has %d characters; use at least 16 random ones", len(c.pol.API.Token))
		}
	}
	if m != nil {
		if ap, _, ok := c.addrPort(m.Listen, true); ok {
			c.pol.Metrics.Listen = ap
		}
	}
}

func (c *compiler) compileHookEvents(e hcl.Expression) []hooks.Kind {
	list, ok := c.strList(e)
	if !ok {
		return hooks.Kinds()
	}
	var out []hooks.Kind
	for _, it := range list {
		if !slices.Contains(hooks.Kinds(), hooks.Kind(it.s)) {
			c.errorf(it.rng, "Unknown hook event", "%q is not an event; write any of %s", it.s, strings.Join(HookEvents, ", "))
			continue
		}
		out = append(out, hooks.Kind(it.s))
	}
	return out
}

func (c *compiler) compileHooks(blocks []hooksBlock) {
	c.pol.Hooks = hooks.DefaultConfig()
	names := map[string]hcl.Range{}
	dup := func(name string, rng hcl.Range) bool {
		if prev, ok := names[name]; ok {
			c.errorf(rng, "Duplicate hook", "a hook named %q is already defined at %s", name, rangeString(prev))
			return true
		}
		names[name] = rng
		return false
	}
	for _, hb := range blocks {
		for _, e := range hb.Exec {
			if dup(e.Name, e.DeclRange) {
				continue
			}
			h := hooks.ExecConfig{Name: e.Name, Timeout: hooks.DefaultExecTimeout, Events: c.compileHookEvents(e.Events)}
			if e.Path == nil || !strings.HasPrefix(*e.Path, "/") {
				c.errorf(e.DeclRange, "Invalid hook path", "an exec hook runs an absolute path, such as path = \"/usr/local/bin/notify-noc\"")
			} else {
				h.Path = *e.Path
			}
			if d, _, ok := c.duration(e.Timeout); ok {
				h.Timeout = d
			}
			c.pol.Hooks.Exec = append(c.pol.Hooks.Exec, h)
		}
		for _, w := range hb.Webhooks {
			if dup(w.Name, w.DeclRange) {
				continue
			}
			h := hooks.WebhookConfig{Name: w.Name, Timeout: hooks.DefaultWebhookTimeout, Retries: hooks.DefaultRetries,
				RetryBackoff: hooks.DefaultRetryBackoff, Events: c.compileHookEvents(w.Events)}
			if w.URL == nil || !(strings.HasPrefix(*w.URL, "http://") || strings.HasPrefix(*w.URL, "https://")) {
				c.errorf(w.DeclRange, "Invalid webhook URL", "a webhook posts to an http:// or https:// URL, such as url = \"https://noc.example.net/floodgate\"")
			} else {
				h.URL = *w.URL
			}
			if w.Headers != nil {
				h.Headers = *w.Headers
			}
			if d, _, ok := c.duration(w.Timeout); ok {
				h.Timeout = d
			}
			if n, _, ok := c.uintRange(w.Retries, 0, 20, "retries"); ok {
				h.Retries = int(n)
			}
			c.pol.Hooks.Webhooks = append(c.pol.Hooks.Webhooks, h)
		}
	}
}

func (c *compiler) sourceName(names map[string]hcl.Range, name string, rng hcl.Range) bool {
	if prev, dup := names[name]; dup {
		c.errorf(rng, "Duplicate source name", "a source named %q is already defined at %s; give each a distinct name", name, rangeString(prev))
		return false
	}
	names[name] = rng
	return true
}

var fanoutModes = []string{"hash", "lb", "cpu", "rollover", "random"}

func (c *compiler) compileMirrors(blocks []mirrorBlock, names map[string]hcl.Range) {
	ifaces := map[string]hcl.Range{}
	for _, b := range blocks {
		if !c.sourceName(names, b.Name, b.DeclRange) {
			continue
		}
		m := mirror.DefaultConfig()
		m.Name = b.Name
		list, ok := c.strList(b.Interfaces)
		if !ok || len(list) == 0 {
			c.errorf(b.DeclRange, "Missing interfaces", "a mirror source captures interfaces, such as interfaces = [\"eth1\"]")
		}
		for _, it := range list {
			if prev, dup := ifaces[it.s]; dup {
				c.errorf(it.rng, "Duplicate interface", "%s is already captured at %s", it.s, rangeString(prev))
				continue
			}
			ifaces[it.s] = it.rng
			m.Interfaces = append(m.Interfaces, it.s)
		}
		if n, _, ok := c.uintRange(b.Workers, 1, 64, "workers"); ok {
			m.Workers = int(n)
		}
		if s, rng, ok := c.str(b.Fanout); ok {
			if !slices.Contains(fanoutModes, s) {
				c.errorf(rng, "Invalid fanout", "%q is not a fanout mode; write one of %s", s, strings.Join(fanoutModes, ", "))
			}
			m.Fanout = s
		}
		if n, _, ok := c.uintRange(b.FanoutGroup, 1, 65535, "fanout_group"); ok {
			m.FanoutGroup = uint16(n)
		}
		if b.Promiscuous != nil {
			m.Promiscuous = *b.Promiscuous
		}
		if b.IncludeOutgoing != nil {
			m.IncludeOutgoing = *b.IncludeOutgoing
		}
		if n, _, ok := c.size(b.BlockSize); ok {
			m.BlockSize = int(n)
		}
		if n, _, ok := c.uintRange(b.Blocks, 2, 4096, "blocks"); ok {
			m.NumBlocks = int(n)
		}
		if d, _, ok := c.duration(b.BlockTimeout); ok {
			m.BlockTimeout = d
		}
		if n, _, ok := c.uintRange(b.BatchSize, 1, 1<<16, "batch_size"); ok {
			m.BatchSize = int(n)
		}
		if d, _, ok := c.duration(b.FlushInterval); ok {
			m.FlushInterval = d
		}
		c.pol.Mirrors = append(c.pol.Mirrors, m)
	}
}

func (c *compiler) compilePcaps(blocks []pcapBlock, names map[string]hcl.Range) {
	for _, b := range blocks {
		if !c.sourceName(names, b.Name, b.DeclRange) {
			continue
		}
		p := pcapfile.DefaultConfig()
		p.Name = b.Name
		if b.File == nil || *b.File == "" {
			c.errorf(b.DeclRange, "Missing file", "a pcap source replays a capture, such as file = \"/var/tmp/attack.pcap\"")
		} else {
			p.Path = *b.File
		}
		if f, rng, ok := c.number(b.Speed); ok {
			if f < 0 || f > 1000 {
				c.errorf(rng, "Invalid speed", "speed %g is out of range; write 0 (as fast as possible), 1 (recorded pace) up to 1000", f)
			}
			p.Speed = f
		}
		if n, _, ok := c.uintRange(b.Loops, 1, 1<<20, "loops"); ok {
			p.Loops = int(n)
		}
		if n, _, ok := c.uintRange(b.Sampling, 1, 1<<24, "sampling_rate"); ok {
			p.Sampling = uint32(n)
		}
		if s, rng, ok := c.str(b.Timestamps); ok {
			if s != "replay" && s != "capture" {
				c.errorf(rng, "Invalid timestamps", "%q: write \"replay\" or \"capture\"", s)
			}
			p.Timestamps = pcapfile.Timestamps(s)
		}
		c.pol.Pcaps = append(c.pol.Pcaps, p)
	}
}
