// Package kafka connects a node of a Floodgate cluster to Kafka with
// franz-go: the client options of the kafka block (TLS, SASL), waiting
// for the brokers at start, and the topics the cluster uses, created when
// missing and refused, with a message that says why, when they exist with
// settings that would break it.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate-ddos/floodgate/policies"
)

// Options are the client options of k: seed brokers, client id, TLS and
// SASL. Files named by the TLS block are read now.
func Options(k policies.Kafka) ([]kgo.Opt, error) {
	if !k.Enabled() {
		return nil, errors.New("kafka: no brokers configured")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if t := k.TLS; t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: tls ca_file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: tls ca_file %s holds no PEM certificate", t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: tls client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if s := k.SASL; s != nil {
		switch s.Mechanism {
		case "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case "scram-sha-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka: sasl mechanism %q", s.Mechanism)
		}
	}
	return opts, nil
}

// Backoff bounds of WaitBrokers.
const (
	minWait = 500 * time.Millisecond
	maxWait = 10 * time.Second
)

// WaitBrokers waits until a broker answers, asking again with backoff
// (0.5 s doubling to 10 s) and logging every failure with the next try;
// only ctx ends it without a broker. Brokers that are down at start are
// an outage to wait out, not a reason to crash.
func WaitBrokers(ctx context.Context, cl *kgo.Client, log hclog.Logger) error {
	wait := minWait
	for attempt := 1; ; attempt++ {
		err := cl.Ping(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("kafka brokers reachable", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kafka: no broker reachable: %w", err)
		}
		log.Warn("kafka brokers unreachable; trying again", "error", err.Error(), "attempt", attempt, "in", wait.String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: no broker reachable: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}

// Topic is a topic a node needs and how it must be.
type Topic struct {
	policies.KafkaTopic
	// Compact is true for a compacted topic (the mitigation topic) and
	// false for one that must never be compacted (the flow topic, whose
	// records share keys).
	Compact bool
}

// Topics are the topics of a cluster configured by k.
func Topics(k policies.Kafka) []Topic {
	return []Topic{{KafkaTopic: k.FlowTopic}, {KafkaTopic: k.MitigationTopic, Compact: true}}
}

// EnsureTopics creates the topics that are missing and checks those that
// exist: a topic whose cleanup.policy is not what it must be is refused
// (a compacted flow topic loses records, a mitigation topic that is not
// compacted forgets nothing and grows without bound); a partition count
// other than the configured one is only logged, as the consumer groups
// work with any.
func EnsureTopics(ctx context.Context, adm *kadm.Client, log hclog.Logger, topics ...Topic) error {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	var errs []error
	for _, t := range topics {
		d, ok := existing[t.Name]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			// Metadata may be stale, and another node may create it
			// first: a topic that turns out to exist is checked.
			err := create(ctx, adm, t)
			if err == nil {
				log.Info("kafka topic created", "topic", t.Name, "partitions", t.Partitions, "replication", t.Replication, "compacted", t.Compact)
				continue
			}
			if !errors.Is(err, kerr.TopicAlreadyExists) {
				errs = append(errs, err)
				continue
			}
			d.Err = nil
		}
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("kafka: topic %s: %w", t.Name, d.Err))
			continue
		}
		if err := check(ctx, adm, t); err != nil {
			errs = append(errs, err)
			continue
		}
		if n := len(d.Partitions); ok && n != int(t.Partitions) {
			log.Warn("kafka topic has another partition count than configured; using it as it is", "topic", t.Name, "partitions", n, "configured", t.Partitions)
		}
	}
	return errors.Join(errs...)
}

func cleanupPolicy(compact bool) string {
	if compact {
		return "compact"
	}
	return "delete"
}

func create(ctx context.Context, adm *kadm.Client, t Topic) error {
	policy := cleanupPolicy(t.Compact)
	resp, err := adm.CreateTopic(ctx, t.Partitions, t.Replication, map[string]*string{"cleanup.policy": &policy}, t.Name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("kafka: create topic %s (%d partitions, replication %d): %w", t.Name, t.Partitions, t.Replication, err)
	}
	return nil
}

func check(ctx context.Context, adm *kadm.Client, t Topic) error {
	rcs, err := adm.DescribeTopicConfigs(ctx, t.Name)
	if err != nil {
		return fmt.Errorf("kafka: describe topic %s: %w", t.Name, err)
	}
	rc, err := rcs.On(t.Name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("kafka: describe topic %s: %w", t.Name, err)
	}
	got := "delete" // Kafka's default
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			got = *c.Value
		}
	}
	want := cleanupPolicy(t.Compact)
	if got != want {
		return fmt.Errorf("kafka: topic %s exists with cleanup.policy=%s; it must be %s (%s): change it (kafka-configs --alter --add-config cleanup.policy=%s) or name another topic in the kafka block",
			t.Name, got, want, map[bool]string{true: "a speaker reads the latest decision per key", false: "its records share keys; compaction would drop them"}[t.Compact], want)
	}
	return nil
}
