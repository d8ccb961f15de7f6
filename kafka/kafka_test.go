package kafka

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/policies"
)

// syncBuffer is a log sink the test can read while the code writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (hclog.Logger, *syncBuffer) {
	var b syncBuffer
	return hclog.New(&hclog.LoggerOptions{Output: &b, Level: hclog.Debug}), &b
}

// admin returns an admin client of a kfake cluster, and the cluster.
func admin(t *testing.T, opts ...kfake.Opt) (*kadm.Client, *kfake.Cluster, policies.Kafka) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := policies.DefaultKafka()
	k.Brokers = c.ListenAddrs()
	k.FlowTopic.Replication, k.MitigationTopic.Replication = 1, 1
	o, err := Options(k)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(o...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl), c, k
}

func TestEnsureTopics(t *testing.T) {
	adm, _, k := admin(t)
	log, out := testLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 2 { // the second time finds them and changes nothing
		if err := EnsureTopics(ctx, adm, log, Topics(k)...); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(out.String(), "kafka topic created"); n != 2 {
		t.Errorf("%d topics created, want 2:\n%s", n, out)
	}
	// A client of its own: the first one's metadata is cached.
	o, _ := Options(k)
	fresh, err := kgo.NewClient(o...)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	adm = kadm.NewClient(fresh)
	td, err := adm.ListTopics(ctx, k.FlowTopic.Name, k.MitigationTopic.Name)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td[k.FlowTopic.Name].Partitions); n != 12 {
		t.Errorf("flow topic: %d partitions, want 12", n)
	}
	if n := len(td[k.MitigationTopic.Name].Partitions); n != 1 {
		t.Errorf("mitigation topic: %d partitions, want 1", n)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, k.MitigationTopic.Name)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On(k.MitigationTopic.Name, nil)
	compact := false
	for _, c := range rc.Configs {
		compact = compact || c.Key == "cleanup.policy" && c.Value != nil && *c.Value == "compact"
	}
	if !compact {
		t.Errorf("mitigation topic not compacted: %+v", rc.Configs)
	}
}

func TestEnsureTopicsRefusesWrongSettings(t *testing.T) {
	adm, _, k := admin(t)
	log, _ := testLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	compact, del := "compact", "delete"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &compact}, k.FlowTopic.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &del}, k.MitigationTopic.Name); err != nil {
		t.Fatal(err)
	}
	err := EnsureTopics(ctx, adm, log, Topics(k)...)
	for _, want := range []string{
		"topic floodgate-flows-v1 exists with cleanup.policy=compact; it must be delete",
		"topic floodgate-mitigations-v1 exists with cleanup.policy=delete; it must be compact",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// TestWaitBrokers starts the broker only after the node has begun waiting
// for it: the node retries with backoff, says so, and goes on once it
// answers.
func TestWaitBrokers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	k := policies.DefaultKafka()
	k.Brokers = []string{l.Addr().String()}
	o, err := Options(k)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(o, kgo.RetryTimeout(500*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	log, out := testLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- WaitBrokers(ctx, cl, log) }()
	time.Sleep(1500 * time.Millisecond)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-done; err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "kafka brokers unreachable; trying again") || !strings.Contains(out.String(), "kafka brokers reachable") {
		t.Errorf("log does not tell the wait:\n%s", out)
	}

	// With no broker at all, only the context ends the wait.
	c.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancelShort()
	if err := WaitBrokers(short, cl, log); err == nil {
		t.Error("WaitBrokers succeeded without a broker")
	}
}

func TestOptions(t *testing.T) {
	k := policies.DefaultKafka()
	if _, err := Options(k); err == nil {
		t.Error("options without brokers")
	}
	k.Brokers = []string{"127.0.0.1:9092"}
	for _, m := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		k.SASL = &policies.KafkaSASL{Mechanism: m, Username: "u", Password: "p"}
		if _, err := Options(k); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	k.TLS = &policies.KafkaTLS{CAFile: "/nonexistent/ca.pem"}
	if _, err := Options(k); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}
