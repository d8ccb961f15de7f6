package controller

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// storeCmp compares mitigations: netip values have no Equal method, and
// times are compared with Time.Equal (go-cmp's default), so that the
// location a decoded time comes back in does not matter.
var storeCmp = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

var storeT0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// rtbhMit is a blackhole with every field of Mitigation set, so that a
// round trip shows that none is lost.
func rtbhMit(victim string) *Mitigation {
	p := netip.MustParsePrefix(victim)
	a := flowspec.Announcement{Kind: flowspec.RTBH, Prefix: p,
		Communities: []policies.Community{policies.Blackhole, 0xfde80009}, NextHop: netip.MustParseAddr("192.0.2.66")}
	return &Mitigation{
		Key: a.Key(), Announcement: a, Hostgroup: "customers", Response: "blackhole",
		AttackID: 42, Merged: []uint64{43, 44}, Rule: 1, Rules: 2, Victim: p, AttackPPS: 123456.75,
		Reason: "pps 123456 > 100000", Started: storeT0, Expires: storeT0.Add(10 * time.Minute),
		Duration: 10 * time.Minute, Extend: true, Hold: 30 * time.Second,
		EscalateAt: storeT0.Add(3 * time.Minute), Escalated: true, Escalation: true,
		AttackEnded: storeT0.Add(5 * time.Minute).In(time.FixedZone("CET", 3600)),
		DryRun:      true, Manual: true,
	}
}

// flowspecMit is a FlowSpec rule with most match components set.
func flowspecMit(dst string, port uint32) *Mitigation {
	d := netip.MustParsePrefix(dst)
	r := &flowspec.Rule{Dst: d, Src: netip.MustParsePrefix("198.51.100.0/24"), Protocols: []uint8{17},
		SrcPorts: []flowspec.Range{flowspec.Single(port), {Lo: 1000, Hi: 2000}}, PacketLengths: []flowspec.Range{{Lo: 400, Hi: 500}},
		TCPFlagsSet: flowspec.FlagSYN, DSCP: []uint8{46}, Fragment: flowspec.FragIsFragment}
	a := flowspec.Announcement{Kind: flowspec.FlowSpec, Rule: r,
		Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: 1250.5}}
	return &Mitigation{
		Key: a.Key(), Announcement: a, Hostgroup: "customers", Response: "ntp", AttackID: 7, Victim: d,
		AttackPPS: 99.5, Reason: "udp sport 123", Started: storeT0, Expires: storeT0.Add(time.Minute), Duration: time.Minute,
	}
}

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeOp is a Put (put set) or a Delete (del set).
type storeOp struct {
	put *Mitigation
	del string
}

// TestStoreRoundTrip writes, replaces and deletes mitigations, checks what
// Load returns, then closes the store and checks that a new Store on the
// same file loads the same: what was written before Close survives it.
func TestStoreRoundTrip(t *testing.T) {
	v4, v6 := rtbhMit("203.0.113.10/32"), rtbhMit("2001:db8::10/128")
	fs := flowspecMit("203.0.113.11/32", 123)
	v4b := rtbhMit("203.0.113.10/32") // same key as v4, other content
	v4b.Response, v4b.Expires, v4b.Merged, v4b.DryRun = "ntp", storeT0.Add(time.Hour), nil, false
	fsV6 := flowspecMit("2001:db8::11/128", 53)
	fsV6.Announcement.Rule.Src = netip.Prefix{}
	fsV6.Announcement.Rule.FlowLabels = []uint32{0xfffff}
	fsV6.Announcement.Action = flowspec.Action{Kind: flowspec.Redirect, RTASN: 65000, RTValue: 100}
	fsV6.Key = fsV6.Announcement.Key()

	tests := []struct {
		name string
		ops  []storeOp
		want []*Mitigation // in key order, as Load returns them
	}{
		{name: "empty"},
		{name: "one", ops: []storeOp{{put: v4}}, want: []*Mitigation{v4}},
		{
			name: "several",
			ops:  []storeOp{{put: v6}, {put: fs}, {put: v4}, {put: fsV6}},
			want: []*Mitigation{fsV6, fs, v6, v4},
		},
		{name: "replace by key", ops: []storeOp{{put: v4}, {put: fs}, {put: v4b}}, want: []*Mitigation{fs, v4b}},
		{name: "delete", ops: []storeOp{{put: v4}, {put: fs}, {put: v6}, {del: fs.Key}}, want: []*Mitigation{v6, v4}},
		{name: "delete all", ops: []storeOp{{put: v4}, {del: v4.Key}}},
		{name: "delete missing key", ops: []storeOp{{put: v4}, {del: "rtbh:192.0.2.1/32"}}, want: []*Mitigation{v4}},
		{name: "put after delete", ops: []storeOp{{put: v4}, {del: v4.Key}, {put: v4b}}, want: []*Mitigation{v4b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s := openTestStore(t, path)
			for _, op := range tt.ops {
				var err error
				if op.put != nil {
					err = s.Put(op.put)
				} else {
					err = s.Delete(op.del)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string, s *Store) {
				t.Helper()
				got, err := s.Load()
				if err != nil {
					t.Fatalf("%s: Load: %v", when, err)
				}
				if diff := cmp.Diff(tt.want, got, storeCmp...); diff != "" {
					t.Errorf("%s: Load (-want +got):\n%s", when, diff)
				}
			}
			check("open", s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openTestStore(t, path)
			defer s2.Close()
			check("after reopen", s2)
		})
	}
}

// TestStoreReopenSameStore: a Store closed (or stopped) can be started
// again and finds its data.
func TestStoreReopenSameStore(t *testing.T) {
	ctx := context.Background()
	s := NewStore(filepath.Join(t.TempDir(), "state.db"))
	m := rtbhMit("203.0.113.10/32")
	for round := range 3 {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		got, err := s.Load()
		if err != nil {
			t.Fatalf("round %d: Load: %v", round, err)
		}
		if round > 0 && len(got) != 1 {
			t.Fatalf("round %d: loaded %d mitigations, want 1", round, len(got))
		}
		if err := s.Put(m); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
	}
}

// TestStoreLifecycle checks the component contract: Start twice fails,
// Close (and Stop) twice, or before Start, are fine.
func TestStoreLifecycle(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		run     func(s *Store) error
		wantErr string // "" for no error
	}{
		{name: "start twice", run: func(s *Store) error {
			if err := s.Start(ctx); err != nil {
				return err
			}
			defer s.Close()
			return s.Start(ctx)
		}, wantErr: "already open"},
		{name: "close twice", run: func(s *Store) error {
			if err := s.Start(ctx); err != nil {
				return err
			}
			if err := s.Close(); err != nil {
				return err
			}
			return s.Close()
		}},
		{name: "stop twice", run: func(s *Store) error {
			if err := s.Start(ctx); err != nil {
				return err
			}
			if err := s.Stop(ctx); err != nil {
				return err
			}
			return s.Stop(ctx)
		}},
		{name: "close before start", run: func(s *Store) error { return s.Close() }},
		{name: "stop before start", run: func(s *Store) error { return s.Stop(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(NewStore(filepath.Join(t.TempDir(), "state.db")))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestStoreLockedByAnotherProcess: bbolt's file lock keeps a second store
// (a second daemon) off an open state file; it waits a second and says
// why. Once the first is closed the second opens and sees its data.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s1 := openTestStore(t, path)
	m := rtbhMit("203.0.113.10/32")
	if err := s1.Put(m); err != nil {
		t.Fatal(err)
	}
	for _, open := range []struct {
		name string
		open func() error
	}{
		{"OpenStore", func() error {
			s, err := OpenStore(path)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"Start", func() error {
			s := NewStore(path)
			err := s.Start(context.Background())
			if err == nil {
				s.Close()
			}
			return err
		}},
	} {
		t.Run(open.name, func(t *testing.T) {
			t0 := time.Now()
			err := open.open()
			if err == nil || !strings.Contains(err.Error(), "locked by another process") {
				t.Fatalf("second store on an open file: error %v, want one containing %q", err, "locked by another process")
			}
			if took := time.Since(t0); took < 900*time.Millisecond {
				t.Errorf("gave up after %v, want about the 1s lock timeout", took)
			}
		})
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, path)
	defer s2.Close()
	got, err := s2.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*Mitigation{m}, got, storeCmp...); diff != "" {
		t.Errorf("after the first store closed (-want +got):\n%s", diff)
	}
}

// TestStoreCorruptRecord: a record that does not decode is reported by
// Load, naming its key, and the other mitigations are still returned.
func TestStoreCorruptRecord(t *testing.T) {
	good := []*Mitigation{flowspecMit("203.0.113.11/32", 123), rtbhMit("203.0.113.10/32"), rtbhMit("203.0.113.12/32")}
	tests := []struct {
		name  string
		key   string // sorts between the good keys
		value []byte
	}{
		{"garbage", "rtbh:203.0.113.100/32", []byte("\x00\xffnot json at all")},
		{"truncated", "rtbh:203.0.113.100/32", []byte(`{"Key":"rtbh:203.0.113.100/32","Announcement":{"Kind":1,`)},
		{"empty", "rtbh:203.0.113.100/32", []byte{}},
		{"wrong types", "rtbh:203.0.113.100/32", []byte(`{"Key":5,"Victim":"not a prefix"}`)},
		{"bad prefix", "rtbh:203.0.113.100/32", []byte(`{"Key":"rtbh:203.0.113.100/32","Victim":"203.0.113.300/32"}`)},
		{"first key", "a", []byte("garbage")},
		{"last key", "zzz", []byte("garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s := openTestStore(t, path)
			for _, m := range good {
				if err := s.Put(m); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(tt.key), tt.value) })
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}

			s = openTestStore(t, path)
			defer s.Close()
			got, err := s.Load()
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Load error %v, want one naming %q", err, tt.key)
			}
			if diff := cmp.Diff(good, got, storeCmp...); diff != "" {
				t.Errorf("Load beside the corrupt record (-want +got):\n%s", diff)
			}
		})
	}
}
