package policies

import (
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
	// Roles are what this node does in the cluster, any of RoleCollector
	// (reads flows from its sources and publishes them to FlowTopic),
	// RoleDetector (consumes FlowTopic in Group, detects and publishes
	// decisions to MitigationTopic) and RoleSpeaker (reads
	// MitigationTopic and announces it over BGP). Always in that order
	// and without repeats, whatever the order written. Default all
	// three.
	Roles []string
	// Node is this node's name in the cluster, written into every
	// decision it publishes. Default the host name (os.Hostname), or
	// ClientID when it has none.
	Node string
	// Group is the consumer group of the detectors, which share the
	// partitions of FlowTopic. Default DefaultKafkaGroup.
	Group string
	// SessionTimeout is how long the brokers wait for a silent member of
	// a consumer group before they hand its partitions to the others.
	// Default DefaultKafkaSessionTimeout; from 1s to 5m.
	SessionTimeout time.Duration
	// MaxBuffered is how many flow-topic messages (each the records of
	// one partition key from one batch) a collector keeps in memory while
	// the brokers are unreachable or slow; past it, messages are dropped
	// and their records counted. Default DefaultKafkaMaxBuffered; from 1000 to
	// 10000000.
	MaxBuffered int
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

// Collector reports whether the node has RoleCollector.
func (k *Kafka) Collector() bool { return slices.Contains(k.Roles, RoleCollector) }

// Detector reports whether the node has RoleDetector.
func (k *Kafka) Detector() bool { return slices.Contains(k.Roles, RoleDetector) }

// Speaker reports whether the node has RoleSpeaker.
func (k *Kafka) Speaker() bool { return slices.Contains(k.Roles, RoleSpeaker) }

// Roles of a node in a cluster (Kafka.Roles).
const (
	RoleCollector = "collector"
	RoleDetector  = "detector"
	RoleSpeaker   = "speaker"
)

// kafkaRoles are the roles in their canonical order.
var kafkaRoles = []string{RoleCollector, RoleDetector, RoleSpeaker}

// KafkaSource is a `kafka` source: a topic of flow records that another
// program writes, read by the collectors of the cluster.
type KafkaSource struct {
	// Name identifies the source in logs and metrics; unique among all
	// sources.
	Name string
	// Topic is the topic read. Required.
	Topic string
	// Format is the records' encoding; only KafkaFormatGoflow2 for now
	// (goflow2 -format=bin: flowpb.FlowMessage, each preceded by its
	// length as a varint). Default KafkaFormatGoflow2.
	Format string
	// Group is the consumer group shared by the collectors reading the
	// topic, which split its partitions. Default
	// DefaultKafkaSourceGroup.
	Group string
}

// KafkaFormatGoflow2 is goflow2's binary format (-format=bin).
const KafkaFormatGoflow2 = "goflow2"

// kafkaFormats are the formats a kafka source accepts.
var kafkaFormats = []string{KafkaFormatGoflow2}

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
	// DefaultKafkaGroup is the detectors' consumer group.
	DefaultKafkaGroup          = "floodgate-detectors"
	DefaultKafkaSessionTimeout = 6 * time.Second
	DefaultKafkaMaxBuffered    = 100_000
	// DefaultKafkaSourceGroup is the consumer group of the collectors
	// reading a kafka source.
	DefaultKafkaSourceGroup = "floodgate-collectors"
)

// SASL mechanisms.
var saslMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// DefaultKafka is the kafka block's defaults, without brokers. Node is
// the host name (the one thing read from outside the files), or
// DefaultKafkaClientID when there is none.
func DefaultKafka() Kafka {
	return Kafka{
		ClientID:        DefaultKafkaClientID,
		Roles:           slices.Clone(kafkaRoles),
		Node:            defaultNode(DefaultKafkaClientID),
		Group:           DefaultKafkaGroup,
		SessionTimeout:  DefaultKafkaSessionTimeout,
		MaxBuffered:     DefaultKafkaMaxBuffered,
		FlowTopic:       KafkaTopic{Name: DefaultFlowTopic, Partitions: DefaultFlowPartitions, Replication: DefaultKafkaReplication},
		MitigationTopic: KafkaTopic{Name: DefaultMitigationTopic, Partitions: 1, Replication: DefaultKafkaReplication},
	}
}

// defaultNode is the host name, or clientID when there is none.
func defaultNode(clientID string) string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return clientID
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
	c.compileKafkaRoles(b.Roles, k)
	k.Node = defaultNode(k.ClientID)
	if s, rng, ok := c.str(b.Node); ok {
		if s == "" {
			c.errorf(rng, "Empty node", "name this node in the cluster, such as node = \"detector-1\", or leave node out for the host name")
		}
		k.Node = s
	}
	if s, rng, ok := c.str(b.Group); ok {
		if s == "" {
			c.errorf(rng, "Empty group", "name the detectors' consumer group or leave group out for the default %q", DefaultKafkaGroup)
		}
		k.Group = s
	}
	if d, rng, ok := c.duration(b.SessionTimeout); ok {
		if d < time.Second || d > 5*time.Minute {
			c.errorf(rng, "Invalid session_timeout", "session_timeout %s is out of range; write a duration from 1s to 5m, such as \"6s\"", d)
		}
		k.SessionTimeout = d
	}
	if n, _, ok := c.uintRange(b.MaxBuffered, 1000, 10_000_000, "max_buffered"); ok {
		k.MaxBuffered = int(n)
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

// compileKafkaRoles sets k.Roles from the roles attribute, in canonical
// order.
func (c *compiler) compileKafkaRoles(e hcl.Expression, k *Kafka) {
	list, ok := c.strList(e)
	if !ok {
		return
	}
	if len(list) == 0 {
		c.errorf(e.Range(), "No role", "a node takes at least one role; write any of %s, or leave roles out for all three", strings.Join(kafkaRoles, ", "))
	}
	seen := map[string]hcl.Range{}
	for _, it := range list {
		if !slices.Contains(kafkaRoles, it.s) {
			c.errorf(it.rng, "Unknown role", "%q is not a role; write any of %s", it.s, strings.Join(kafkaRoles, ", "))
			continue
		}
		if prev, dup := seen[it.s]; dup {
			c.errorf(it.rng, "Duplicate role", "%q is already listed at %s", it.s, rangeString(prev))
			continue
		}
		seen[it.s] = it.rng
	}
	k.Roles = nil
	for _, r := range kafkaRoles {
		if _, ok := seen[r]; ok {
			k.Roles = append(k.Roles, r)
		}
	}
}

// compileKafkaSources compiles the kafka sources; kb is the kafka block,
// compiled already (nil when there is none).
func (c *compiler) compileKafkaSources(blocks []kafkaSourceBlock, names map[string]hcl.Range, kb *kafkaBlock) {
	k := &c.pol.Kafka
	topics := map[string]hcl.Range{}
	for _, b := range blocks {
		if !c.sourceName(names, b.Name, b.DeclRange) {
			continue
		}
		switch {
		case kb == nil:
			c.errorf(b.DeclRange, "Kafka source without a collector",
				"source %q is read by the collectors of a cluster: add a kafka block with brokers, such as kafka { brokers = [\"kafka1.example.net:9092\"] }", b.Name)
		case !k.Collector():
			c.errorf(b.DeclRange, "Kafka source without a collector",
				"source %q is read by collectors, and this node's roles are %s: add %q to roles in the kafka block at %s, or leave roles out for all three",
				b.Name, strings.Join(k.Roles, ", "), RoleCollector, rangeString(kb.DeclRange))
		}
		s := KafkaSource{Name: b.Name, Format: KafkaFormatGoflow2, Group: DefaultKafkaSourceGroup}
		if t, rng, ok := c.str(b.Topic); ok {
			switch {
			case t == "":
				c.errorf(rng, "Empty topic name", "name the topic the flows are read from, such as topic = \"flows\"")
			case kb != nil && (t == k.FlowTopic.Name || t == k.MitigationTopic.Name):
				c.errorf(rng, "Topic of the cluster", "%q is a topic the cluster itself writes; a kafka source reads flows written by another program, such as goflow2", t)
			default:
				if prev, dup := topics[t]; dup {
					c.errorf(rng, "Duplicate topic", "topic %q is already read at %s; each record would be counted twice", t, rangeString(prev))
				}
				topics[t] = rng
			}
			s.Topic = t
		} else if rng.Filename == "" {
			c.errorf(b.DeclRange, "Missing topic", "a kafka source reads a topic, such as topic = \"flows\"")
		}
		if f, rng, ok := c.str(b.Format); ok {
			if !slices.Contains(kafkaFormats, f) {
				c.errorf(rng, "Unknown format", "%q is not a format; write %q (goflow2 -format=bin)", f, KafkaFormatGoflow2)
			}
			s.Format = f
		}
		if g, rng, ok := c.str(b.Group); ok {
			if g == "" {
				c.errorf(rng, "Empty group", "name the collectors' consumer group or leave group out for the default %q", DefaultKafkaSourceGroup)
			}
			s.Group = g
		}
		c.pol.KafkaSources = append(c.pol.KafkaSources, s)
	}
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
