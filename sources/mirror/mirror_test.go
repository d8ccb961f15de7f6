package mirror

import (
	"strings"
	"testing"

	"github.com/floodgate-ddos/floodgate/sources"
)

// nullSink discards records.
type nullSink struct{}

func (nullSink) Ingest([]sources.Record) {}

func TestConfig(t *testing.T) {
	d := DefaultConfig()
	d.Interfaces = []string{"eth1"}
	if d = d.withDefaults(); d.Validate() != nil {
		t.Errorf("defaults do not validate: %v", d.Validate())
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if !d.Promiscuous || d.IncludeOutgoing {
		t.Errorf("defaults: promiscuous %v, outgoing %v", d.Promiscuous, d.IncludeOutgoing)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interface", Config{}, "no interface"},
		{"twice", Config{Interfaces: []string{"eth1", "eth1"}}, "twice"},
		{"long name", Config{Interfaces: []string{"a-very-long-interface-name"}}, "interface name"},
		{"fanout", Config{Interfaces: []string{"eth1"}, Fanout: "magic"}, "fanout"},
		{"workers", Config{Interfaces: []string{"eth1"}, Workers: 100}, "workers"},
		{"block size", Config{Interfaces: []string{"eth1"}, BlockSize: 1000}, "block size"},
		{"ring too big", Config{Interfaces: []string{"eth1"}, NumBlocks: 5000}, "1 GiB"},
		{"block timeout", Config{Interfaces: []string{"eth1"}, BlockTimeout: 1}, "block timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nullSink{}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{Interfaces: []string{"eth1"}}, nil, nil); err == nil {
		t.Error("New accepted a nil sink")
	}
}
