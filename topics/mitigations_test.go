package topics

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

func testMitigations(t testing.TB) []Mitigation {
	t.Helper()
	r, err := flowspec.ParseRule("dst 203.0.113.10/32 proto udp sport 123 length 257-65535")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := flowspec.NewFlowSpec(r, &policies.FlowSpecAction{Action: "rate-limit", RateBPS: 8e6})
	if err != nil {
		t.Fatal(err)
	}
	rtbh := flowspec.NewRTBH(netip.MustParsePrefix("2001:db8::10/128"), policies.BGP{}, []policies.Community{65000<<16 | 666})
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	return []Mitigation{
		{Key: fs.Key(), Announcement: fs, Hostgroup: "customers", Response: "ntp", Victim: netip.MustParsePrefix("203.0.113.10/32"),
			Reason: "attack 7", Started: start, Expires: start.Add(10 * time.Minute), Origin: "detector-2"},
		{Key: rtbh.Key(), Announcement: rtbh, Hostgroup: "manual", Response: "manual", Victim: netip.MustParsePrefix("2001:db8::10/128"),
			Started: start, Expires: start.Add(time.Hour), Origin: "api@speaker-1"},
	}
}

func TestMitigationRoundTrip(t *testing.T) {
	for _, m := range testMitigations(t) {
		msg, err := AppendMitigation(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMitigation([]byte(m.Key), msg)
		if err != nil {
			t.Fatalf("%s: %v", m.Key, err)
		}
		if diff := cmp.Diff(m, got, cmpAddr, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s (-sent +decoded):\n%s", m.Key, diff)
		}
	}
}

func TestMitigationErrors(t *testing.T) {
	m := testMitigations(t)[0]
	good, err := AppendMitigation(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte(m.Key)
	for _, c := range []struct {
		name     string
		key, msg []byte
	}{
		{"empty", key, nil},
		{"no magic", key, append([]byte("XXX"), good[3:]...)},
		{"version 2", key, append(append([]byte(MitigationMagic), 2), good[4:]...)},
		{"other key", []byte("rtbh:203.0.113.10/32"), good},
		{"unknown field", key, append(append([]byte(nil), good[:4]...), []byte(`{"key":"x","ttl":5}`)...)},
		{"two objects", key, append(append([]byte(nil), good...), "{}"...)},
		{"not json", key, append(append([]byte(nil), good[:4]...), "{"...)},
		{"key not the announcement's", []byte("flowspec:x"), append(append([]byte(nil), good[:4]...),
			[]byte(`{"key":"flowspec:x","announcement":{"Kind":"flowspec","Rule":{"Dst":"203.0.113.10/32","Protocols":[17]},"Action":{"Kind":1}},"expires":"2030-01-01T00:00:00Z"}`)...)},
	} {
		if _, err := DecodeMitigation(c.key, c.msg); !errors.Is(err, ErrMitigation) {
			t.Errorf("%s: error %v, want ErrMitigation", c.name, err)
		}
	}
	bad := m
	bad.Expires = time.Time{}
	if _, err := AppendMitigation(nil, &bad); !errors.Is(err, ErrMitigation) {
		t.Errorf("a mitigation without expiry encoded: %v", err)
	}
}

func FuzzDecodeMitigation(f *testing.F) {
	// The first line of a seed is the record's key.
	seeds(f, "mitigations", func(b []byte) {
		key, msg, _ := cutLine(b)
		f.Add(key, msg)
	})
	f.Fuzz(func(t *testing.T, key, msg []byte) {
		m, err := DecodeMitigation(key, msg)
		if err != nil {
			return
		}
		again, err := AppendMitigation(nil, &m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if _, err := DecodeMitigation(key, again); err != nil {
			t.Fatalf("re-encoded mitigation does not decode: %v", err)
		}
	})
}

func cutLine(b []byte) (line, rest []byte, ok bool) {
	for i, c := range b {
		if c == '\n' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}
