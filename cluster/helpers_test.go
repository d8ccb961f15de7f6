package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/kafka"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

// brokers starts a one-broker kfake cluster, or uses the brokers in
// FLOODGATE_KAFKA_BROKERS (comma-separated) when it is set, so that the
// same tests run against a real Kafka. Each test gets its own topics.
func brokers(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("FLOODGATE_KAFKA_BROKERS"); b != "" {
		return b
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// clusterHCL is a cluster node's policy: %BROKERS%, %NODE%, %ROLES% and
// %TOPIC% (a prefix of the topics' names, one per test) are filled in.
const clusterHCL = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
detection { tick = "100ms" }
kafka {
  brokers         = [%BROKERS%]
  node            = "%NODE%"
  roles           = [%ROLES%]
  session_timeout = "6s"
  flow_topic {
    name        = "%TOPIC%-flows"
    partitions  = 6
    replication = 1
  }
  mitigation_topic {
    name        = "%TOPIC%-mitigations"
    replication = 1
  }
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8::/32"]
  threshold "incoming" {
    pps = "20kpps"
  }
  ewma = "500ms"
  response "reflection" {
    when = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "3s"
  }
  response "blackhole" {
    rtbh {}
    duration = "3s"
  }
}
hostgroup "carpet" {
  prefixes = ["198.51.100.0/24"]
  threshold "incoming" {
    pps = "20kpps"
    group { pps = "50kpps" }
  }
  response "blackhole" {
    rtbh {}
    duration = "3s"
  }
}
`

// nodePolicy is the policy of node with roles on brokers and topic.
func nodePolicy(t *testing.T, brokers, topic, node string, roles ...string) *policies.Policy {
	t.Helper()
	quoted := func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = fmt.Sprintf("%q", s)
		}
		return strings.Join(q, ", ")
	}
	src := strings.NewReplacer("%BROKERS%", quoted(strings.Split(brokers, ",")), "%NODE%", node, "%ROLES%", quoted(roles),
		"%TOPIC%", topic).Replace(clusterHCL)
	pol, err := policies.Parse([]string{"test.hcl"}, map[string][]byte{"test.hcl": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	pol.API.Socket = ""
	pol.Mitigation.StateFile = ""
	return pol
}

// topicName is a name of topics of its own for each test.
func topicName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(strings.ToLower(t.Name())) + fmt.Sprint("-", time.Now().UnixNano()%1e6)
}

// ensureTopics creates pol's topics.
func ensureTopics(t *testing.T, pol *policies.Policy) {
	t.Helper()
	opts, err := kafka.Options(pol.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), hclog.NewNullLogger(), kafka.Topics(pol.Kafka)...); err != nil {
		t.Fatal(err)
	}
}

func testLogger(t *testing.T, name string) hclog.Logger {
	level := hclog.Warn
	if testing.Verbose() {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: testWriter{t}, Level: level})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls cond every 50 ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start starts c and stops it at the end of the test.
func start(t *testing.T, name string, c interface {
	Start(context.Context) error
	Stop(context.Context) error
}) {
	t.Helper()
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
}

// recordingAnnouncer keeps what a speaker set sends, as a router's RIB.
type recordingAnnouncer struct {
	mu        sync.Mutex
	rib       map[string]flowspec.Announcement
	announced int
	opened    chan bool
}

func newRecordingAnnouncer() *recordingAnnouncer {
	return &recordingAnnouncer{rib: map[string]flowspec.Announcement{}, opened: make(chan bool, 1)}
}

func (r *recordingAnnouncer) Announce(_ context.Context, a *flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rib[a.Key()] = *a
	r.announced++
	return nil
}

func (r *recordingAnnouncer) Withdraw(_ context.Context, a *flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rib, a.Key())
	return nil
}

func (r *recordingAnnouncer) OpenSessions(_ context.Context, restarting bool) error {
	r.opened <- restarting
	return nil
}

func (r *recordingAnnouncer) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.rib {
		out = append(out, k)
	}
	return out
}

// ntp is a batch of NTP reflection toward victim: n records of 1000
// packets each from port 123, as sampled flows spanning the last 100 ms.
func ntp(victim netip.Addr, n int) []sources.Record {
	now := time.Now().UnixNano()
	out := make([]sources.Record, n)
	for i := range out {
		out[i] = sources.Record{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%200)}), Dst: victim, SrcPort: 123,
			DstPort: uint16(1024 + i), Proto: 17, Packets: 1000, Bytes: 468_000, Length: 468, Sampling: 1,
			Start: now - int64(100*time.Millisecond), End: now}
	}
	return out
}

// polT is a policy with the test's helpers.
type polT struct{ *policies.Policy }
