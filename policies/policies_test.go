package policies

import (
	"errors"
	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const minimal = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
`

func parseOne(t testing.TB, src string) (*Policy, error) {
	t.Helper()
	return Parse([]string{"test.hcl"}, map[string][]byte{"test.hcl": []byte(src)})
}

func TestParseValid(t *testing.T) {
	src := minimal + `
log {
  level  = "debug"
  format = "json"
}
detection {
  tick         = "500ms"
  confidence   = 0.99
  burst_factor = 3
  burst_ewma   = "400ms"
}
sources {
  netflow "routers" {
    listen         = "127.0.0.1:2055"
    receive_buffer = "8MiB"
    workers        = 2
    sampling_rate  = 100
    max_record_pps = "15Mpps"
    max_record_bps = "10Gbps"
    exporter "192.0.2.1" { sampling_rate = 1000 }
  }
  sflow "switches" { listen = "[::1]:6343" }
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8::/32"]
  threshold "incoming" {
    pps = "20kpps"
    bps = "1.5Gbps"
  }
  threshold "outgoing" { pps = 5000 }
  ewma     = "3s"
  baseline = "1h"
}
mitigation {
  dry_run    = true
  max_active = 500
  state_file = "/tmp/state.db"
}
api {
  socket = "/tmp/fg.sock"
  listen = "127.0.0.1:8080"
}
metrics { listen = "127.0.0.1:9650" }
hooks {
  exec "noc" {
    path   = "/usr/local/bin/notify"
    events = ["mitigation_announced"]
  }
  webhook "chat" {
    url     = "https://chat.example.net/hook"
    retries = 5
    headers = { Authorization = "Bearer x" }
  }
}
`
	pol, err := parseOne(t, src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Policy{
		Files:     []string{"test.hcl"},
		Log:       Log{Level: "debug", Format: "json"},
		Detection: Detection{Tick: 500 * time.Millisecond, Confidence: 0.99, BurstFactor: 3, BurstEWMA: 400 * time.Millisecond, Window: DefaultWindow},
		Daemon:    Daemon{ShutdownTimeout: DefaultShutdownTimeout},
		Kafka:     DefaultKafka(),
		Listeners: []flow.ListenerConfig{
			func() flow.ListenerConfig {
				l := flow.DefaultListenerConfig(flow.ProtoNetFlow)
				l.Name, l.Listen, l.ReceiveBuffer, l.Workers, l.DefaultSampling = "routers", "127.0.0.1:2055", 8<<20, 2, 100
				l.MaxRecordPPS, l.MaxRecordBPS = 15_000_000, 10_000_000_000
				l.Sampling = map[netip.Addr]uint32{netip.MustParseAddr("192.0.2.1"): 1000}
				return l
			}(),
			func() flow.ListenerConfig {
				l := flow.DefaultListenerConfig(flow.ProtoSFlow)
				l.Name, l.Listen = "switches", "[::1]:6343"
				return l
			}(),
		},
		BGP:        BGP{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.254"), GracefulRestart: DefaultGracefulRestart()},
		Mitigation: Mitigation{DryRun: true, MaxActive: 500, StateFile: "/tmp/state.db"},
		API:        API{Socket: "/tmp/fg.sock", Listen: netip.MustParseAddrPort("127.0.0.1:8080")},
		Metrics:    Metrics{Listen: netip.MustParseAddrPort("127.0.0.1:9650")},
		Hooks: hooks.Config{
			QueueSize: hooks.DefaultQueueSize, StopGrace: hooks.DefaultStopGrace,
			Exec: []hooks.ExecConfig{{Name: "noc", Path: "/usr/local/bin/notify", Timeout: hooks.DefaultExecTimeout,
				Events: []hooks.Kind{hooks.MitigationAnnounced}}},
			Webhooks: []hooks.WebhookConfig{{Name: "chat", URL: "https://chat.example.net/hook", Headers: map[string]string{"Authorization": "Bearer x"},
				Timeout: hooks.DefaultWebhookTimeout, Retries: 5, RetryBackoff: hooks.DefaultRetryBackoff, Events: hooks.Kinds()}},
		},
		Hostgroups: []*Hostgroup{{
			Name:     "customers",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")},
			Incoming: Threshold{Total: Limits{PPS: 20000, BPS: 1_500_000_000}},
			Outgoing: Threshold{Total: Limits{PPS: 5000}},
			EWMA:     3 * time.Second,
			Baseline: time.Hour,
			MaxRules: DefaultMaxRules, OnBudgetFull: []string{BudgetAggregate, BudgetReplace},
			Aggregate: Aggregate{After: DefaultAggregateAfter, MaxPrefix4: DefaultAggregatePrefix4, MaxPrefix6: DefaultAggregatePrefix6},
		}},
	}
	if diff := cmp.Diff(pol, want, cmpAddr); diff != "" {
		t.Errorf("Parse (-got +want):\n%s", diff)
	}
}

var cmpAddr = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

func TestDefaults(t *testing.T) {
	pol, err := parseOne(t, minimal+`hostgroup "two-lines" { prefixes = ["192.0.2.0/24"] }`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if pol.Log != (Log{Level: "info", Format: "text"}) || pol.Detection.Tick != DefaultTick {
		t.Errorf("global defaults: log %+v tick %s", pol.Log, pol.Detection.Tick)
	}
	h := pol.Hostgroups[0]
	if h.EWMA != DefaultEWMA || h.Baseline != DefaultBaseline || h.MaxRules != DefaultMaxRules || h.Incoming.Enabled() {
		t.Errorf("hostgroup defaults: %+v", h)
	}
	if pol.Mitigation != (Mitigation{MaxActive: DefaultMaxActive, StateFile: DefaultStateFile}) {
		t.Errorf("mitigation defaults: %+v", pol.Mitigation)
	}
}

func TestNeighborDefaults(t *testing.T) {
	pol, err := parseOne(t, `
bgp {
  asn = 65000
  router_id = "192.0.2.254"
  neighbor "v4" {
    address = "192.0.2.1"
    asn     = 65001
  }
  neighbor "v6" {
    address  = "2001:db8::1"
    asn      = 65000
    port     = 1179
    passive  = true
    multihop = 3
    password = "secret"
    announce = ["rtbh"]
  }
}`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Neighbor{
		{Name: "v4", Address: netip.MustParseAddr("192.0.2.1"), ASN: 65001, Port: 179,
			Families: []string{"ipv4-unicast", "ipv4-flowspec", "ipv6-flowspec"}, Announce: []string{"rtbh", "flowspec"}, MaxFlowSpec: DefaultMaxFlowSpec},
		{Name: "v6", Address: netip.MustParseAddr("2001:db8::1"), ASN: 65000, Port: 1179, Passive: true, Multihop: 3,
			Password: "secret", Families: []string{"ipv6-unicast"}, Announce: []string{"rtbh"}, MaxFlowSpec: DefaultMaxFlowSpec},
	}
	if diff := cmp.Diff(pol.BGP.Neighbors, want, cmpAddr); diff != "" {
		t.Errorf("neighbors (-got +want):\n%s", diff)
	}
}

func TestGracefulRestart(t *testing.T) {
	pol, err := parseOne(t, `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
  graceful_restart {
    restart_time    = "300s"
    notification    = false
    deferral_time   = "2s"
    long_lived      = true
    long_lived_time = "6h"
  }
}`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := GracefulRestart{Enabled: true, RestartTime: 300 * time.Second, DeferralTime: 2 * time.Second, LongLived: true, LongLivedTime: 6 * time.Hour}
	if pol.BGP.GracefulRestart != want {
		t.Errorf("graceful restart = %+v, want %+v", pol.BGP.GracefulRestart, want)
	}
	pol, err = parseOne(t, "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  graceful_restart { enabled = false }\n}\n")
	if err != nil || pol.BGP.GracefulRestart.Enabled || pol.BGP.GracefulRestart.RestartTime != DefaultRestartTime {
		t.Errorf("disabled: %+v, %v", pol.BGP.GracefulRestart, err)
	}
}

func TestKafka(t *testing.T) {
	pol, err := parseOne(t, minimal+`
kafka {
  brokers   = ["kafka1.example.net:9092", "[2001:db8::9]:9093"]
  client_id = "detector-1"
  roles     = ["speaker", "detector"]
  node      = "dc1-detector-1"
  group     = "fg-detect"
  session_timeout = "10s"
  max_buffered    = 50000
  tls {
    ca_file   = "/etc/floodgate/kafka-ca.pem"
    cert_file = "/etc/floodgate/node.pem"
    key_file  = "/etc/floodgate/node.key"
  }
  sasl {
    mechanism = "scram-sha-512"
    username  = "floodgate"
    password  = "secret"
  }
  flow_topic {
    partitions  = 24
    replication = 2
  }
  mitigation_topic { name = "fg-decisions" }
}`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := DefaultKafka()
	want.Brokers = []string{"kafka1.example.net:9092", "[2001:db8::9]:9093"}
	want.ClientID = "detector-1"
	want.Roles = []string{RoleDetector, RoleSpeaker}
	want.Node, want.Group = "dc1-detector-1", "fg-detect"
	want.SessionTimeout, want.MaxBuffered = 10*time.Second, 50000
	want.TLS = &KafkaTLS{CAFile: "/etc/floodgate/kafka-ca.pem", CertFile: "/etc/floodgate/node.pem", KeyFile: "/etc/floodgate/node.key"}
	want.SASL = &KafkaSASL{Mechanism: "scram-sha-512", Username: "floodgate", Password: "secret"}
	want.FlowTopic.Partitions, want.FlowTopic.Replication = 24, 2
	want.MitigationTopic.Name = "fg-decisions"
	if diff := cmp.Diff(want, pol.Kafka); diff != "" {
		t.Errorf("kafka (-want +got):\n%s", diff)
	}
	if !pol.Kafka.Enabled() {
		t.Error("a kafka block with brokers is not enabled")
	}
	if k := pol.Kafka; k.Collector() || !k.Detector() || !k.Speaker() {
		t.Errorf("roles %v: collector %v detector %v speaker %v", k.Roles, k.Collector(), k.Detector(), k.Speaker())
	}
	single, err := parseOne(t, minimal)
	if err != nil || single.Kafka.Enabled() {
		t.Errorf("no kafka block: enabled %v, %v", single.Kafka.Enabled(), err)
	}
	if k := single.Kafka; !k.Collector() || !k.Detector() || !k.Speaker() || k.Node == "" ||
		k.Group != DefaultKafkaGroup || k.SessionTimeout != DefaultKafkaSessionTimeout || k.MaxBuffered != DefaultKafkaMaxBuffered {
		t.Errorf("defaults: %+v", k)
	}
	if h, err := os.Hostname(); err == nil && h != "" && single.Kafka.Node != h {
		t.Errorf("default node %q, want the host name %q", single.Kafka.Node, h)
	}
}

func TestKafkaSources(t *testing.T) {
	pol, err := parseOne(t, minimal+`
kafka {
  brokers = ["kafka1.example.net:9092"]
  roles   = ["collector"]
}
sources {
  kafka "goflow2" { topic = "flows" }
  kafka "edge" {
    topic  = "edge-flows"
    format = "goflow2"
    group  = "fg-edge"
  }
}`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []KafkaSource{
		{Name: "goflow2", Topic: "flows", Format: KafkaFormatGoflow2, Group: DefaultKafkaSourceGroup},
		{Name: "edge", Topic: "edge-flows", Format: KafkaFormatGoflow2, Group: "fg-edge"},
	}
	if diff := cmp.Diff(want, pol.KafkaSources); diff != "" {
		t.Errorf("kafka sources (-want +got):\n%s", diff)
	}
	if k := pol.Kafka; !k.Collector() || k.Detector() || k.Speaker() {
		t.Errorf("roles %v", k.Roles)
	}
}

// TestErrors checks that each mistake is reported at its position with a
// message that says what to write instead.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // file:line:col: and a part of the message
	}{
		{"unknown attribute", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  baseline_ = \"5m\"\n}\n",
			`test.hcl:8:3: Unsupported argument: An argument named "baseline_" is not expected here. Did you mean "baseline"?`},
		{"unknown block", minimal + "hostgrup \"a\" {}\n",
			`test.hcl:6:1: Unsupported block type: Blocks of type "hostgrup" are not expected here. Did you mean "hostgroup"?`},
		{"bad cidr", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\", \"192.0.2.300/24\"]\n}\n",
			`test.hcl:7:31: Invalid prefix: "192.0.2.300/24" is not a CIDR prefix`},
		{"host bits", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.1/24\"]\n}\n",
			`test.hcl:7:15: Prefix has host bits set: "192.0.2.1/24" has bits set past /24; write "192.0.2.0/24"`},
		{"bad duration", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  baseline = \"10 minutes\"\n}\n",
			`test.hcl:8:14: Invalid duration: "10 minutes" is not a duration; write a number with a unit`},
		{"bad rate", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  threshold \"incoming\" { pps = \"20k\" }\n}\n",
			`test.hcl:8:32: Invalid rate: "20k" does not end in pps`},
		{"bad direction", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  threshold \"inbound\" { pps = 1 }\n}\n",
			`test.hcl:8:3: Invalid threshold direction: "inbound" is not a direction`},
		{"asn out of range", "bgp {\n  asn = 4294967296\n  router_id = \"192.0.2.1\"\n}\n",
			`test.hcl:2:9: Invalid asn: 4294967296 is out of range; write a whole number from 1 to 4294967295`},
		{"router id v6", "bgp {\n  asn = 1\n  router_id = \"2001:db8::1\"\n}\n",
			`test.hcl:3:15: Invalid router_id: the router id is an IPv4 address`},
		{"missing bgp", "hostgroup \"a\" { prefixes = [\"192.0.2.0/24\"] }\n",
			`test.hcl:1:1: Missing bgp block`},
		{"bad listen", minimal + "sources {\n  netflow \"r\" { listen = \"127.0.0.1\" }\n}\n",
			`test.hcl:7:26: Invalid listen address: "127.0.0.1" is not address:port`},
		{"bad level", minimal + "log { level = \"verbose\" }\n",
			`test.hcl:6:15: Invalid log level: "verbose" is not a level`},
		{"tick too small", minimal + "detection { tick = \"10ms\" }\n",
			`test.hcl:6:20: Invalid tick: tick 10ms is out of range`},
		{"confidence too high", minimal + "detection { confidence = 1 }\n",
			`test.hcl:6:26: Invalid confidence: confidence 1 is out of range`},
		{"burst factor too small", minimal + "detection { burst_factor = 1.2 }\n",
			`test.hcl:6:28: Invalid burst_factor`},
		{"window too short", minimal + "detection { window = \"500ms\" }\n",
			`test.hcl:6:22: Invalid window: window 500ms is out of range`},
		{"window under two ticks", minimal + "detection {\n  tick = \"1s\"\n  window = \"1500ms\"\n}\n",
			`test.hcl:8:12: Invalid window: window 1.5s is out of range`},
		{"bad max_record_pps", minimal + "sources {\n  netflow \"r\" {\n    listen = \"127.0.0.1:2055\"\n    max_record_pps = \"fast\"\n  }\n}\n",
			`test.hcl:9:22: Invalid rate`},
		{"bad community", "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  rtbh_communities = [\"65536:1\"]\n}\n",
			`test.hcl:4:23: Invalid community`},
		{"duplicate prefix", minimal + "hostgroup \"a\" { prefixes = [\"192.0.2.0/24\"] }\nhostgroup \"b\" { prefixes = [\"192.0.2.0/24\"] }\n",
			`test.hcl:7:29: Duplicate prefix: 192.0.2.0/24 is already in hostgroup "a" at test.hcl:6:29`},
		{"api on the network without token", minimal + "api { listen = \"0.0.0.0:8080\" }\n",
			`test.hcl:6:16: API without a token`},
		{"unknown hook event", minimal + "hooks {\n  exec \"x\" {\n    path = \"/bin/true\"\n    events = [\"ban\"]\n  }\n}\n",
			`test.hcl:9:15: Unknown hook event`},
		{"whitelist_flow port without protocol", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  whitelist_flow { dst_port = 53 }\n}\n",
			`test.hcl:8:31: Port without protocol: dst_port needs protocol = "tcp", "udp" or "sctp"`},
		{"whitelist_flow bad protocol", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  whitelist_flow { protocol = \"dns\" }\n}\n",
			`test.hcl:8:31: Invalid protocol: "dns" is not a protocol here`},
		{"whitelist_flow empty", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  whitelist_flow {}\n}\n",
			`test.hcl:8:3: Empty whitelist_flow`},
		{"whitelist_flow host bits", minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n  whitelist_flow { src = \"192.0.2.1/24\" }\n}\n",
			`test.hcl:8:26: Prefix has host bits set`},
		{"restart_time too long", "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  graceful_restart { restart_time = \"2h\" }\n}\n",
			`test.hcl:4:37: Invalid restart_time: restart_time 2h0m0s is out of range; write whole seconds from 1s to 1h8m15s`},
		{"deferral_time fraction", "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  graceful_restart { deferral_time = \"1.5s\" }\n}\n",
			`test.hcl:4:38: Invalid deferral_time`},
		{"two graceful_restart blocks", "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  graceful_restart {}\n  graceful_restart {}\n}\n",
			`test.hcl:5:3: Duplicate graceful_restart block: the bgp block takes one graceful_restart block; the first is at test.hcl:4:3`},
		{"kafka without brokers", minimal + "kafka {}\n", `test.hcl:6:1: Missing brokers`},
		{"kafka bad broker", minimal + "kafka { brokers = [\"kafka1\"] }\n", `test.hcl:6:20: Invalid broker: "kafka1" is not host:port`},
		{"kafka sasl mechanism", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  sasl {\n    mechanism = \"gssapi\"\n    username = \"u\"\n    password = \"p\"\n  }\n}\n",
			`test.hcl:9:17: Unknown SASL mechanism: "gssapi" is not one`},
		{"kafka half a certificate", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  tls { cert_file = \"c.pem\" }\n}\n",
			`test.hcl:8:3: Incomplete client certificate`},
		{"kafka partitions", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  flow_topic { partitions = 0 }\n}\n",
			`test.hcl:8:29: Invalid partitions`},
		{"kafka unknown role", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  roles = [\"collector\", \"router\"]\n}\n",
			`test.hcl:8:25: Unknown role: "router" is not a role; write any of collector, detector, speaker`},
		{"kafka role twice", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  roles = [\"speaker\", \"speaker\"]\n}\n",
			`test.hcl:8:23: Duplicate role: "speaker" is already listed at test.hcl:8:12`},
		{"kafka no role", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  roles = []\n}\n",
			`test.hcl:8:11: No role`},
		{"kafka empty group", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  group = \"\"\n}\n",
			`test.hcl:8:11: Empty group`},
		{"kafka empty node", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  node = \"\"\n}\n",
			`test.hcl:8:10: Empty node`},
		{"kafka session_timeout", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  session_timeout = \"10m\"\n}\n",
			`test.hcl:8:21: Invalid session_timeout: session_timeout 10m0s is out of range; write a duration from 1s to 5m`},
		{"kafka session_timeout not a duration", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  session_timeout = 6\n}\n",
			`test.hcl:8:21: Invalid value: expected a string in double quotes`},
		{"kafka max_buffered", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  max_buffered = 10\n}\n",
			`test.hcl:8:18: Invalid max_buffered: 10 is out of range; write a whole number from 1000 to 10000000`},
		{"kafka source without kafka", minimal + "sources {\n  kafka \"g\" { topic = \"flows\" }\n}\n",
			`test.hcl:7:3: Kafka source without a collector: source "g" is read by the collectors of a cluster: add a kafka block`},
		{"kafka source without collector role", minimal + "kafka {\n  brokers = [\"k:9092\"]\n  roles = [\"detector\"]\n}\nsources {\n  kafka \"g\" { topic = \"flows\" }\n}\n",
			`test.hcl:11:3: Kafka source without a collector: source "g" is read by collectors, and this node's roles are detector: add "collector" to roles in the kafka block at test.hcl:6:1`},
		{"kafka source missing topic", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"g\" {}\n}\n",
			`test.hcl:8:3: Missing topic`},
		{"kafka source empty topic", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"g\" { topic = \"\" }\n}\n",
			`test.hcl:8:23: Empty topic name`},
		{"kafka source cluster topic", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"g\" { topic = \"floodgate-flows-v1\" }\n}\n",
			`test.hcl:8:23: Topic of the cluster`},
		{"kafka source duplicate topic", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"a\" { topic = \"flows\" }\n  kafka \"b\" { topic = \"flows\" }\n}\n",
			`test.hcl:9:23: Duplicate topic: topic "flows" is already read at test.hcl:8:23`},
		{"kafka source format", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"g\" {\n    topic = \"flows\"\n    format = \"json\"\n  }\n}\n",
			`test.hcl:10:14: Unknown format: "json" is not a format; write "goflow2"`},
		{"kafka source empty group", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  kafka \"g\" {\n    topic = \"flows\"\n    group = \"\"\n  }\n}\n",
			`test.hcl:10:13: Empty group`},
		{"kafka source name taken", minimal + "kafka { brokers = [\"k:9092\"] }\nsources {\n  netflow \"r\" { listen = \"127.0.0.1:2055\" }\n  kafka \"r\" { topic = \"flows\" }\n}\n",
			`test.hcl:9:3: Duplicate source name: a source named "r" is already defined at test.hcl:8:3`},
		{"syntax", minimal + "hostgroup \"a\" {\n  prefixes = [\n}\n",
			`test.hcl:8:1:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOne(t, tc.src)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse error = %v, want *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, tc.want)
			}
			for _, d := range cerr.Diags {
				if d.Subject == nil || d.Subject.Filename == "" || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic without position: %s", FormatDiagnostic(d))
				}
			}
		})
	}
}

func TestEmptyAndCommentOnlyFilesAreFine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "00-bgp.hcl", minimal)
	write(t, dir, "10-empty.hcl", "")
	write(t, dir, "20-comments.hcl", "# nothing here yet\n\n// nor here\n/* nor here */\n\n\n")
	write(t, dir, "30-blank-lines.hcl", "\n\nhostgroup \"a\" {\n\n  prefixes = [\n\n    \"192.0.2.0/24\",\n\n  ]\n\n}\n\n")
	pol, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(pol.Files) != 4 || len(pol.Hostgroups) != 1 {
		t.Errorf("files %d hostgroups %d, want 4 and 1", len(pol.Files), len(pol.Hostgroups))
	}
}

func TestDirectoryDuplicates(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.hcl", minimal+"hostgroup \"acme\" { prefixes = [\"192.0.2.0/24\"] }\n")
	write(t, dir, "b.hcl", "\nhostgroup \"acme\" { prefixes = [\"198.51.100.0/24\"] }\nbgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n}\n")
	_, err := Load(dir)
	if err == nil {
		t.Fatal("Load succeeded, want duplicate errors")
	}
	a, b := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
	for _, want := range []string{
		b + `:2:1: Duplicate hostgroup: hostgroup "acme" is already defined at ` + a + ":6:1",
		b + ":3:1: Duplicate bgp block: a bgp block is already defined at " + a + ":2:1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%s\ndoes not contain\n%s", err, want)
		}
	}
}

func TestExamplesValidate(t *testing.T) {
	dirs, err := filepath.Glob("../examples/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if files, _ := filepath.Glob(filepath.Join(d, "*.hcl")); len(files) == 0 {
			continue
		}
		n++
		t.Run(filepath.Base(d), func(t *testing.T) {
			if _, err := Load(d); err != nil {
				t.Errorf("Load(%s): %v", d, err)
			}
		})
	}
	// A directory of node configurations (examples/cluster/nodes): each
	// file is a node's whole configuration.
	nodes, err := filepath.Glob("../examples/*/nodes/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range nodes {
		n++
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(f)))+"/"+filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("Load(%s): %v", f, err)
			}
		})
	}
	if n == 0 || len(nodes) == 0 {
		t.Fatal("no example configurations found")
	}
}

func TestCovering(t *testing.T) {
	pol, err := parseOne(t, minimal+`
hostgroup "wide" { prefixes = ["203.0.113.0/24", "2001:db8::/32"] }
hostgroup "narrow" { prefixes = ["203.0.113.128/25"] }
`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prefix string
		want   string
	}{
		{"203.0.113.10/32", "wide"},
		{"203.0.113.200/32", "narrow"},
		{"203.0.113.0/24", "wide"},
		{"203.0.112.0/23", ""},
		{"198.51.100.1/32", ""},
		{"2001:db8::1/128", "wide"},
		{"::/0", ""},
		{"0.0.0.0/0", ""},
	}
	for _, tc := range tests {
		h, ok := pol.Covering(netip.MustParsePrefix(tc.prefix))
		got := ""
		if ok {
			got = h.Name
		}
		if got != tc.want {
			t.Errorf("Covering(%s) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in, unit string
		want     uint64
		ok       bool
	}{
		{"200kpps", "pps", 200_000, true},
		{"1.5Mpps", "pps", 1_500_000, true},
		{"10Mbps", "bps", 10_000_000, true},
		{"2 Gbps", "bps", 2_000_000_000, true},
		{"500bps", "bps", 500, true},
		{"20k", "pps", 0, false},
		{"-1pps", "pps", 0, false},
		{"Mbps", "bps", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in, tc.unit)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRate(%q, %q) = %d, %v; want %d, ok=%v", tc.in, tc.unit, got, err, tc.want, tc.ok)
		}
	}
}

func write(t testing.TB, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse checks that no input panics the parser and that every error
// carries a position.
func FuzzParse(f *testing.F) {
	f.Add(minimal)
	f.Add(minimal + `hostgroup "a" { prefixes = ["192.0.2.0/24"] threshold "incoming" { pps = "1kpps" } }`)
	f.Add("bgp { asn = \"x\" }")
	f.Add("hostgroup {")
	f.Add(minimal + "kafka {\n  brokers = [\"k:9092\"]\n  roles = [\"speaker\", \"collector\"]\n  session_timeout = \"6s\"\n}\nsources {\n  kafka \"g\" { topic = \"flows\" }\n}\n")
	f.Add("")
	if b, err := os.ReadFile("../examples/quickstart/floodgate.hcl"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, err := parseOne(t, src)
		if err == nil {
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, d := range cerr.Diags {
			if d.Subject == nil || d.Subject.Filename == "" {
				t.Fatalf("diagnostic without position: %s", FormatDiagnostic(d))
			}
		}
	})
}

// TestWhitelistFlow checks that whitelist_flow blocks compile, the
// hostgroup's own before those of the defaults block.
func TestWhitelistFlow(t *testing.T) {
	pol, err := parseOne(t, minimal+`
defaults {
  whitelist_flow {
    src      = "192.0.2.99/32"
    protocol = "tcp"
    src_port = 443
  }
}
hostgroup "a" {
  prefixes = ["198.51.100.0/24"]
  whitelist_flow {
    dst      = "198.51.100.53/32"
    protocol = "UDP"
    dst_port = 53
  }
}
`)
	if err != nil {
		t.Fatal(err)
	}
	got := pol.Hostgroups[0].WhitelistFlows
	want := []WhitelistFlow{
		{Dst: netip.MustParsePrefix("198.51.100.53/32"), Protocol: 17, DstPort: 53},
		{Src: netip.MustParsePrefix("192.0.2.99/32"), Protocol: 6, SrcPort: 443},
	}
	if !slices.Equal(got, want) {
		t.Errorf("whitelist flows %v, want %v", got, want)
	}
	if s := got[0].String(); s != "dst 198.51.100.53/32 proto 17 dport 53" {
		t.Errorf("String = %q", s)
	}
	if e := pol.Explain(netip.MustParseAddr("198.51.100.53")); !strings.Contains(e, "whitelisted flow dst 198.51.100.53/32 proto 17 dport 53") ||
		!strings.Contains(e, "whitelisted flow src 192.0.2.99/32 proto 6 sport 443") {
		t.Errorf("explain does not name both flows:\n%s", e)
	}
}
