package policies

import (
	"net"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// Kafka is how a node of a Floodgate cluster reaches Kafka: the `kafka`
// block. Without brokers (no block) the daemon is a single node and uses
// no Kafka at all.
type Kafka struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// ClientID names this node to the brokers. Default "floodgate".
	ClientID string
	// TLS, when set, encrypts the connections.
	TLS *KafkaTLS
	// SASL, when set, authenticates them.
	SASL *KafkaSASL
	// FlowTopic carries decoded flow records from collectors to
	// detectors; MitigationTopic the detectors' decisions to speakers
	// (compacted).
	FlowTopic, MitigationTopic KafkaTopic
}

// Enabled reports whether the configuration names brokers.
func (k *Kafka) Enabled() bool { return len(k.Brokers) > 0 }

// KafkaTLS is the TLS of the connections to the brokers.
type KafkaTLS struct {
	// CAFile verifies the brokers (default: the system's roots).
	CAFile string
	// CertFile and KeyFile are a client certificate, both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the brokers'
	// certificates.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate: tests only.
	InsecureSkipVerify bool
}

// KafkaSASL is the authentication to the brokers.
type KafkaSASL struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism          string
	Username, Password string
}

// KafkaTopic is a topic a cluster uses and how it is created when missing.
type KafkaTopic struct {
	Name        string
	Partitions  int32
	Replication int16
}

// Defaults of the kafka block.
const (
	DefaultKafkaClientID    = "floodgate"
	DefaultFlowTopic        = "floodgate-flows-v1"
	DefaultMitigationTopic  = "floodgate-mitigations-v1"
	DefaultFlowPartitions   = 12
	DefaultKafkaReplication = 3
)

// SASL mechanisms.
var saslMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// DefaultKafka is the kafka block's defaults, without brokers.
func DefaultKafka() Kafka {
	return Kafka{
		ClientID:        DefaultKafkaClientID,
		FlowTopic:       KafkaTopic{Name: DefaultFlowTopic, Partitions: DefaultFlowPartitions, Replication: DefaultKafkaReplication},
		MitigationTopic: KafkaTopic{Name: DefaultMitigationTopic, Partitions: 1, Replication: DefaultKafkaReplication},
	}
}

func (c *compiler) compileKafka(b *kafkaBlock) {
	k := &c.pol.Kafka
	*k = DefaultKafka()
	if b == nil {
		return
	}
	if list, ok := c.strList(b.Brokers); ok {
		for _, it := range list {
			host, port, err := net.SplitHostPort(it.s)
			if p, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || p == 0 {
				c.errorf(it.rng, "Invalid broker", "%q is not host:port; write a broker as \"kafka1.example.net:9092\"", it.s)
				continue
			}
			k.Brokers = append(k.Brokers, it.s)
		}
	}
	if len(k.Brokers) == 0 {
		c.errorf(b.DeclRange, "Missing brokers", "a kafka block needs brokers, such as brokers = [\"kafka1.example.net:9092\"]; leave the block out for a single node")
	}
	if b.ClientID != nil {
		k.ClientID = *b.ClientID
	}
	if t := onlyOne(c, "tls", b.TLS, func(t kafkaTLSBlock) hcl.Range { return t.DeclRange }); t != nil {
		k.TLS = &KafkaTLS{}
		for _, f := range []struct {
			dst *string
			src *string
		}{{&k.TLS.CAFile, t.CAFile}, {&k.TLS.CertFile, t.CertFile}, {&k.TLS.KeyFile, t.KeyFile}, {&k.TLS.ServerName, t.ServerName}} {
			if f.src != nil {
				*f.dst = *f.src
			}
		}
		if t.InsecureSkipVerify != nil {
			k.TLS.InsecureSkipVerify = *t.InsecureSkipVerify
		}
		if (k.TLS.CertFile == "") != (k.TLS.KeyFile == "") {
			c.errorf(t.DeclRange, "Incomplete client certificate", "set both cert_file and key_file, or neither")
		}
	}
	if s := onlyOne(c, "sasl", b.SASL, func(s kafkaSASLBlock) hcl.Range { return s.DeclRange }); s != nil {
		k.SASL = &KafkaSASL{Mechanism: "plain"}
		if m, rng, ok := c.str(s.Mechanism); ok {
			if !slices.Contains(saslMechanisms, m) {
				c.errorf(rng, "Unknown SASL mechanism", "%q is not one; write %q, %q or %q", m, saslMechanisms[0], saslMechanisms[1], saslMechanisms[2])
			}
			k.SASL.Mechanism = m
		}
		if s.Username != nil {
			k.SASL.Username = *s.Username
		}
		if s.Password != nil {
			k.SASL.Password = *s.Password
		}
		if k.SASL.Username == "" || k.SASL.Password == "" {
			c.errorf(s.DeclRange, "Incomplete SASL", "set username and password")
		}
	}
	c.compileKafkaTopic(onlyOne(c, "flow_topic", b.FlowTopic, func(t kafkaTopicBlock) hcl.Range { return t.DeclRange }), &k.FlowTopic, 1<<16)
	// The mitigation topic is read whole by every speaker: more than one
	// partition buys nothing.
	c.compileKafkaTopic(onlyOne(c, "mitigation_topic", b.MitigationTopic, func(t kafkaTopicBlock) hcl.Range { return t.DeclRange }), &k.MitigationTopic, 64)
}

func (c *compiler) compileKafkaTopic(b *kafkaTopicBlock, t *KafkaTopic, maxPartitions uint64) {
	if b == nil {
		return
	}
	if b.Name != nil {
		if *b.Name == "" {
			c.errorf(b.DeclRange, "Empty topic name", "name a topic or leave name out for the default %q", t.Name)
		}
		t.Name = *b.Name
	}
	if n, _, ok := c.uintRange(b.Partitions, 1, maxPartitions, "partitions"); ok {
		t.Partitions = int32(n)
	}
	if n, _, ok := c.uintRange(b.Replication, 1, 32, "replication"); ok {
		t.Replication = int16(n)
	}
}

// onlyOne returns the first of a block that may appear once, reporting
// the others.
func onlyOne[T any](c *compiler, name string, bs []T, rng func(T) hcl.Range) *T {
	if len(bs) == 0 {
		return nil
	}
	for _, extra := range bs[1:] {
		c.errorf(rng(extra), "Duplicate "+name+" block", "one %s block is allowed; the first is at %s", name, rangeString(rng(bs[0])))
	}
	return &bs[0]
}
