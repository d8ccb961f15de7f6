package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// fakeBackend is a Backend that records what the API asked of it.
type fakeBackend struct {
	pol       *policies.Policy
	active    []Mitigation
	peers     []bgp.PeerStatus
	top       []detect.HostRates
	err       error // returned by every context call when set
	banErr    error
	reloadErr error

	mu       sync.Mutex
	bans     []Ban
	unbans   []string
	topArgs  string
	reloaded int
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Version: "test", Config: "test.hcl"}, f.err
}
func (f *fakeBackend) Attacks(context.Context) ([]AttackInfo, []AttackInfo, error) {
	if f.err != nil {
		return nil, nil, f.err
	}
	return []AttackInfo{{Signature: detect.Signature{ID: 7}}}, nil, nil
}
func (f *fakeBackend) Active(context.Context) ([]Mitigation, error) { return f.active, f.err }
func (f *fakeBackend) Peers(context.Context) ([]bgp.PeerStatus, error) {
	return f.peers, f.err
}
func (f *fakeBackend) Top(n int, by string, dir detect.Direction) []detect.HostRates {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topArgs = fmt.Sprintf("%d %s %s", n, by, dir)
	return f.top
}
func (f *fakeBackend) Policy() *policies.Policy { return f.pol }
func (f *fakeBackend) Ban(_ context.Context, b Ban) (Mitigation, error) {
	if f.banErr != nil {
		return Mitigation{}, f.banErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans = append(f.bans, b)
	return Mitigation{Key: b.Announcement.Key(), Announcement: b.Announcement, Reason: b.Reason}, nil
}
func (f *fakeBackend) Unban(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.active {
		if m.Key == key {
			f.unbans = append(f.unbans, key)
			return nil
		}
	}
	return fmt.Errorf("%s: %w", key, ErrNotFound)
}
func (f *fakeBackend) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloaded++
	return f.reloadErr
}

func newAPITest(t *testing.T, f *fakeBackend, token string) *httptest.Server {
	t.Helper()
	if f.pol == nil {
		f.pol = testPolicy(t, false)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "floodgate_test_total", Help: "a test counter"}))
	s := NewAPIServer(f, policies.API{}, policies.Metrics{}, reg, hclog.NewNullLogger())
	srv := httptest.NewServer(s.Handler(token))
	t.Cleanup(srv.Close)
	return srv
}

// call makes a request and returns the status code and body.
func call(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAPIReads(t *testing.T) {
	fs := mustAnnouncement(t, "dst 203.0.113.9/32 proto 17 sport 123", "discard")
	rtbh := flowspec.NewRTBH(netip.MustParsePrefix("2001:db8::9/128"), policies.BGP{}, nil)
	f := &fakeBackend{
		active: []Mitigation{
			{Key: fs.Key(), Announcement: fs},
			{Key: rtbh.Key(), Announcement: rtbh},
			{Key: "dry", Announcement: fs, DryRun: true},
		},
		peers: []bgp.PeerStatus{
			{Name: "edge1", Address: "192.0.2.1", Established: true, Advertised: map[string]uint64{"ipv4-flowspec": 1}},
			{Address: "192.0.2.2", Established: true, Advertised: map[string]uint64{"ipv4-flowspec": 1, "ipv6-unicast": 1}},
			{Name: "down", Address: "192.0.2.3", Advertised: map[string]uint64{"ipv4-flowspec": 0}},
		},
		top: []detect.HostRates{{Host: detect.Host{Addr: netip.MustParseAddr("203.0.113.9")}}},
	}
	srv := newAPITest(t, f, "")

	code, body := call(t, srv, "GET", "/v1/status", "")
	if code != 200 || !strings.Contains(body, `"version": "test"`) {
		t.Fatalf("status: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", "/v1/attacks", "")
	var att Attacks
	if code != 200 || json.Unmarshal([]byte(body), &att) != nil || len(att.Active) != 1 || att.Recent == nil {
		t.Fatalf("attacks: %d %s (recent must be [] not null)", code, body)
	}

	code, body = call(t, srv, "GET", "/v1/mitigations", "")
	var ms Mitigations
	if code != 200 || json.Unmarshal([]byte(body), &ms) != nil || len(ms.Mitigations) != 3 {
		t.Fatalf("mitigations: %d %s", code, body)
	}
	// Each mitigation lists the established neighbours its family is
	// sent to, by name or else address; a dry-run one none.
	for i, want := range []string{"edge1 192.0.2.2", "192.0.2.2", ""} {
		if got := strings.Join(ms.Mitigations[i].Peers, " "); got != want {
			t.Errorf("mitigation %d peers = %q, want %q", i, got, want)
		}
	}

	code, body = call(t, srv, "GET", "/v1/hosts?by=bps&direction=outgoing&n=5", "")
	if code != 200 || !strings.Contains(body, "203.0.113.9") || f.topArgs != "5 bps outgoing" {
		t.Fatalf("hosts: %d %s (asked %q)", code, body, f.topArgs)
	}
	for _, q := range []string{"by=bits", "direction=sideways", "n=0", "n=1001", "n=x"} {
		if code, body := call(t, srv, "GET", "/v1/hosts?"+q, ""); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("hosts?%s: %d %s, want 400 with an error", q, code, body)
		}
	}

	code, body = call(t, srv, "GET", "/metrics", "")
	if code != 200 || !strings.Contains(body, "floodgate_test_total 0") {
		t.Fatalf("metrics: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", "/v1/nothing", "")
	if code != 404 || !strings.Contains(body, "no such endpoint: GET /v1/nothing") {
		t.Fatalf("unknown endpoint: %d %s", code, body)
	}
	if code, _ := call(t, srv, "PUT", "/v1/status", ""); code != 404 && code != 405 {
		t.Fatalf("PUT /v1/status: %d", code)
	}
}

func TestAPIBackendDown(t *testing.T) {
	srv := newAPITest(t, &fakeBackend{err: ErrLoopStopped}, "")
	for _, p := range []string{"/v1/status", "/v1/attacks", "/v1/mitigations"} {
		code, body := call(t, srv, "GET", p, "")
		if code != 503 || !strings.Contains(body, ErrLoopStopped.Error()) {
			t.Errorf("%s: %d %s, want 503 naming the cause", p, code, body)
		}
	}
	if code, _ := call(t, srv, "DELETE", "/v1/mitigations?prefix=203.0.113.9", ""); code != 503 {
		t.Errorf("unban by prefix with the loop down: %d, want 503", code)
	}
}

func TestAPIBan(t *testing.T) {
	f := &fakeBackend{}
	srv := newAPITest(t, f, "")
	code, body := call(t, srv, "POST", "/v1/mitigations", `{"kind":"flowspec","rule":"dst 203.0.113.9/32 proto 17 sport 123","action":"rate-limit","rate":"10Mbps","duration":"10m"}`)
	if code != 201 || len(f.bans) != 1 {
		t.Fatalf("ban: %d %s", code, body)
	}
	b := f.bans[0]
	if b.Duration != 10*time.Minute || b.Reason != "manual ban" || b.Announcement.Kind != flowspec.FlowSpec {
		t.Fatalf("ban passed on as %+v", b)
	}
	code, body = call(t, srv, "POST", "/v1/mitigations", `{"prefix":"203.0.113.9","duration":"1m","reason":"ticket 42"}`)
	if code != 201 || len(f.bans) != 2 || f.bans[1].Reason != "ticket 42" || f.bans[1].Announcement.Prefix != netip.MustParsePrefix("203.0.113.9/32") {
		t.Fatalf("rtbh ban: %d %s %+v", code, body, f.bans)
	}

	for _, c := range []struct{ name, body, want string }{
		{"not json", `{`, "bad request body"},
		{"unknown field", `{"prefix":"203.0.113.9","duration":"1m","ttl":5}`, "unknown field"},
		{"two values", `{"prefix":"203.0.113.9","duration":"1m"} {}`, "more than one JSON value"},
		{"no duration", `{"prefix":"203.0.113.9"}`, "duration"},
		{"too long", `{"prefix":"203.0.113.9","duration":"721h"}`, "up to 720h"},
		{"host bits", `{"prefix":"203.0.113.9/24","duration":"1m"}`, "host bits"},
		{"bad kind", `{"kind":"acl","prefix":"203.0.113.9","duration":"1m"}`, "not rtbh or flowspec"},
		{"bad rule", `{"kind":"flowspec","rule":"dst nowhere","duration":"1m"}`, "nowhere"},
		{"bad dscp", `{"kind":"flowspec","rule":"dst 203.0.113.9/32 proto 17","action":"mark","dscp":64,"duration":"1m"}`, "dscp 64"},
	} {
		code, body := call(t, srv, "POST", "/v1/mitigations", c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.name, code, body, c.want)
		}
	}
	big := `{"prefix":"203.0.113.9","duration":"1m","reason":"` + strings.Repeat("x", maxBody) + `"}`
	if code, body := call(t, srv, "POST", "/v1/mitigations", big); code != 413 {
		t.Errorf("oversized body: %d %s, want 413", code, body)
	}
	if len(f.bans) != 2 {
		t.Fatalf("a refused request reached the backend: %+v", f.bans)
	}

	// The mitigation loop's own refusals (safety checks) are 422.
	f.banErr = fmt.Errorf("outside the monitored networks: %w", flowspec.ErrRefused)
	if code, body := call(t, srv, "POST", "/v1/mitigations", `{"prefix":"198.51.100.1","duration":"1m"}`); code != 422 || !strings.Contains(body, "outside") {
		t.Errorf("refused ban: %d %s, want 422", code, body)
	}
	f.banErr = errors.New("disk full")
	if code, _ := call(t, srv, "POST", "/v1/mitigations", `{"prefix":"203.0.113.9","duration":"1m"}`); code != 500 {
		t.Errorf("failed ban: %d, want 500", code)
	}
}

func TestAPIUnban(t *testing.T) {
	a := mustAnnouncement(t, "dst 203.0.113.9/32 proto 17", "discard")
	r := flowspec.NewRTBH(netip.MustParsePrefix("203.0.113.9/32"), policies.BGP{}, nil)
	other := flowspec.NewRTBH(netip.MustParsePrefix("203.0.113.10/32"), policies.BGP{}, nil)
	f := &fakeBackend{active: []Mitigation{{Key: a.Key(), Announcement: a}, {Key: r.Key(), Announcement: r}, {Key: other.Key(), Announcement: other}}}
	srv := newAPITest(t, f, "")

	code, body := call(t, srv, "DELETE", "/v1/mitigations?prefix=203.0.113.9", "")
	if code != 200 || strings.Join(f.unbans, ",") != a.Key()+","+r.Key() {
		t.Fatalf("unban by prefix: %d %s, withdrew %v", code, body, f.unbans)
	}
	code, _ = call(t, srv, "DELETE", "/v1/mitigations?key="+other.Key(), "")
	if code != 200 || len(f.unbans) != 3 {
		t.Fatalf("unban by key: %d %v", code, f.unbans)
	}
	for _, c := range []struct {
		q    string
		code int
	}{{"", 400}, {"prefix=nowhere", 400}, {"prefix=198.51.100.1", 404}, {"key=nokey", 404}} {
		if code, body := call(t, srv, "DELETE", "/v1/mitigations?"+c.q, ""); code != c.code {
			t.Errorf("unban ?%s: %d %s, want %d", c.q, code, body, c.code)
		}
	}
}

func TestAPIReload(t *testing.T) {
	f := &fakeBackend{}
	srv := newAPITest(t, f, "")
	if code, body := call(t, srv, "POST", "/v1/reload", ""); code != 200 || f.reloaded != 1 {
		t.Fatalf("reload: %d %s", code, body)
	}
	f.reloadErr = ErrNoConfigPath
	if code, _ := call(t, srv, "POST", "/v1/reload", ""); code != 409 {
		t.Fatalf("reload without a path: %d, want 409", code)
	}
	// A configuration error answers with every diagnostic at file:line:col.
	f.reloadErr = &policies.Error{Diags: hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "first", Subject: &hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 3, Column: 5}}},
		{Severity: hcl.DiagError, Summary: "second", Subject: &hcl.Range{Filename: "b.hcl", Start: hcl.Pos{Line: 9, Column: 1}}},
	}}
	code, body := call(t, srv, "POST", "/v1/reload", "")
	if code != 422 || !strings.Contains(body, "a.hcl:3:5") || !strings.Contains(body, "b.hcl:9:1") {
		t.Fatalf("bad reload: %d %s", code, body)
	}
}

func TestAPIToken(t *testing.T) {
	srv := newAPITest(t, &fakeBackend{}, "s3cret")
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}} {
		if code, _ := call(t, srv, "GET", "/v1/status", "", h...); code != 401 {
			t.Errorf("header %v: %d, want 401", h, code)
		}
	}
	if code, body := call(t, srv, "GET", "/v1/status", "", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("right token: %d %s", code, body)
	}
}

// mustAnnouncement builds a FlowSpec announcement from a rule's text form.
func mustAnnouncement(t *testing.T, rule, action string) flowspec.Announcement {
	t.Helper()
	r, err := flowspec.ParseRule(rule)
	if err != nil {
		t.Fatal(err)
	}
	a, err := flowspec.NewFlowSpec(r, &policies.FlowSpecAction{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
