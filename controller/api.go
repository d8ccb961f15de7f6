package controller

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/supervisor"
)

// API types, shared with the CLI.

// Status is the answer of GET /v1/status.
type Status struct {
	Version string    `json:"version"`
	GoBGP   string    `json:"gobgp"`
	Started time.Time `json:"started"`
	Uptime  string    `json:"uptime"`
	Config  string    `json:"config"`
	DryRun  bool      `json:"dry_run"`
	// Components are the daemon's parts and their state, in start
	// order.
	Components []supervisor.Status `json:"components"`
	Sources    []flow.Stats        `json:"sources"`
	Detection  detect.Stats        `json:"detection"`
	Mitigation MitigatorStats      `json:"mitigation"`
	Neighbors  []bgp.PeerStatus    `json:"neighbors"`
	Hostgroups []HostgroupState    `json:"hostgroups"`
	// Budgets are the rule budgets' use: max_active, each neighbour's
	// max_flowspec_rules (the smallest), each hostgroup's max_rules.
	Budgets []BudgetUse `json:"budgets"`
}

// HostgroupState counts a hostgroup's attacks and mitigations.
type HostgroupState struct {
	Name        string `json:"name"`
	Attacks     int    `json:"attacks"`
	Mitigations int    `json:"mitigations"`
}

// Attacks is the answer of GET /v1/attacks.
type Attacks struct {
	Active []AttackInfo `json:"active"`
	Recent []AttackInfo `json:"recent"`
}

// Mitigations is the answer of GET /v1/mitigations.
type Mitigations struct {
	Mitigations []MitigationView `json:"mitigations"`
}

// MitigationView is a mitigation and the neighbours it is sent to: those
// established with its address family.
type MitigationView struct {
	Mitigation
	Peers []string `json:"peers"`
}

// Hosts is the answer of GET /v1/hosts.
type Hosts struct {
	By        string             `json:"by"`
	Direction string             `json:"direction"`
	Hosts     []detect.HostRates `json:"hosts"`
}

// BanRequest is the body of POST /v1/mitigations.
type BanRequest struct {
	// Kind is "rtbh" (Prefix) or "flowspec" (Rule, Action...).
	Kind string `json:"kind"`
	// Prefix is an address or prefix to blackhole.
	Prefix string `json:"prefix,omitempty"`
	// Communities are added to the global RTBH communities.
	Communities []string `json:"communities,omitempty"`
	// Rule is a FlowSpec rule in its text form (flowspec.ParseRule).
	Rule string `json:"rule,omitempty"`
	// Action is discard, rate-limit, redirect or mark; Rate ("10Mbps"),
	// Redirect ("65000:100") and DSCP go with them.
	Action   string `json:"action,omitempty"`
	Rate     string `json:"rate,omitempty"`
	Redirect string `json:"redirect,omitempty"`
	DSCP     int    `json:"dscp,omitempty"`
	// Duration is how long, such as "10m".
	Duration string `json:"duration"`
	Reason   string `json:"reason,omitempty"`
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
}

// maxBody bounds request bodies.
const maxBody = 64 << 10

// ParseBan turns a ban request into an announcement and a duration,
// checking everything but the safety rules (the mitigation loop applies
// those).
func ParseBan(req BanRequest, g policies.BGP) (flowspec.Announcement, time.Duration, error) {
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d <= 0 || d > 30*24*time.Hour {
		return flowspec.Announcement{}, 0, fmt.Errorf("duration %q: write a duration up to 720h, such as \"10m\"", req.Duration)
	}
	switch req.Kind {
	case "", policies.KindRTBH:
		p, err := parsePrefixOrAddr(req.Prefix)
		if err != nil {
			return flowspec.Announcement{}, 0, err
		}
		var comms []policies.Community
		for _, c := range req.Communities {
			cm, err := policies.ParseCommunity(c)
			if err != nil {
				return flowspec.Announcement{}, 0, err
			}
			comms = append(comms, cm)
		}
		return flowspec.NewRTBH(p, g, comms), d, nil
	case policies.KindFlowSpec:
		r, err := flowspec.ParseRule(req.Rule)
		if err != nil {
			return flowspec.Announcement{}, 0, err
		}
		act := &policies.FlowSpecAction{Action: req.Action, Redirect: req.Redirect, DSCP: uint8(req.DSCP)}
		act.Action = cmp.Or(act.Action, "discard")
		if req.DSCP < 0 || req.DSCP > 63 {
			return flowspec.Announcement{}, 0, fmt.Errorf("dscp %d is not from 0 to 63", req.DSCP)
		}
		if act.Action == "rate-limit" {
			if act.RateBPS, err = policies.ParseRate(req.Rate, "bps"); err != nil {
				return flowspec.Announcement{}, 0, err
			}
		}
		a, err := flowspec.NewFlowSpec(r, act)
		return a, d, err
	}
	return flowspec.Announcement{}, 0, fmt.Errorf("kind %q is not rtbh or flowspec", req.Kind)
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return flowspec.HostPrefix(a), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not an address or a prefix", s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%s has host bits set", p)
	}
	return p, nil
}

// Backend is what the API serves and acts on: the daemon's detection,
// mitigation loop and speaker in one process (the daemon gives its own,
// see Daemon.Backend); a stand-in in tests, or another node's view in a
// cluster.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Attacks(ctx context.Context) (active, recent []AttackInfo, err error)
	// Active is the active set of mitigations.
	Active(ctx context.Context) ([]Mitigation, error)
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
	Top(n int, by string, dir detect.Direction) []detect.HostRates
	// Policy is the running configuration.
	Policy() *policies.Policy
	Ban(ctx context.Context, b Ban) (Mitigation, error)
	Unban(ctx context.Context, key string) error
	// Reload loads the configuration again from where it was read; it
	// fails with ErrNoConfigPath when there is no such place.
	Reload() error
}

// ErrNoConfigPath is returned by a reload of a daemon not started from a
// configuration file.
var ErrNoConfigPath = errors.New("the daemon was not started from a configuration path")

// APIServer serves the JSON API and /metrics on a unix socket, an optional
// TCP listener (bearer token) and an optional metrics-only listener.
type APIServer struct {
	b       Backend
	cfg     policies.API
	metrics policies.Metrics
	reg     *prometheus.Registry
	log     hclog.Logger

	mu      sync.Mutex
	servers []*http.Server
	addrs   []net.Addr
	wg      sync.WaitGroup
}

// NewAPIServer returns the API of b. It opens nothing.
func NewAPIServer(b Backend, cfg policies.API, metrics policies.Metrics, reg *prometheus.Registry, logger hclog.Logger) *APIServer {
	return &APIServer{b: b, cfg: cfg, metrics: metrics, reg: reg, log: logger.Named("api")}
}

// Handler is the API's HTTP handler; token, if not empty, is required as
// a bearer token.
func (s *APIServer) Handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/attacks", s.attacks)
	mux.HandleFunc("GET /v1/mitigations", s.mitigations)
	mux.HandleFunc("POST /v1/mitigations", s.ban)
	mux.HandleFunc("DELETE /v1/mitigations", s.unban)
	mux.HandleFunc("GET /v1/hosts", s.hosts)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Start opens the listeners and serves.
func (s *APIServer) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	type lis struct {
		l net.Listener
		h http.Handler
	}
	var ls []lis
	fail := func(err error) error {
		for _, x := range ls {
			x.l.Close()
		}
		return err
	}
	if s.cfg.Socket != "" {
		l, err := listenUnix(s.cfg.Socket)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, lis{l, s.Handler("")})
	}
	if s.cfg.Listen.IsValid() {
		if s.cfg.Token == "" && !s.cfg.Listen.Addr().IsLoopback() {
			return fail(fmt.Errorf("api: refusing to listen on %s without a token", s.cfg.Listen))
		}
		l, err := net.Listen("tcp", s.cfg.Listen.String())
		if err != nil {
			return fail(fmt.Errorf("api: listen tcp %s: %w", s.cfg.Listen, err))
		}
		ls = append(ls, lis{l, s.Handler(s.cfg.Token)})
	}
	if s.metrics.Listen.IsValid() {
		l, err := net.Listen("tcp", s.metrics.Listen.String())
		if err != nil {
			return fail(fmt.Errorf("metrics: listen tcp %s: %w", s.metrics.Listen, err))
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
		ls = append(ls, lis{l, mux})
	}
	s.servers, s.addrs = nil, nil
	for _, x := range ls {
		srv := &http.Server{Handler: x.h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		s.servers = append(s.servers, srv)
		s.addrs = append(s.addrs, x.l.Addr())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(x.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("api server stopped", "addr", x.l.Addr().String(), "error", err.Error())
			}
		}()
		s.log.Info("serving", "addr", x.l.Addr().String())
	}
	return nil
}

// listenUnix listens on a unix socket, mode 0660, replacing a stale socket
// file but never a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api: %s is in use (is floodgate already running?)", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen unix %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	return l, nil
}

// Addrs returns the listeners' addresses (after Start).
func (s *APIServer) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Stop shuts the servers down, letting requests in flight finish until
// ctx is done.
func (s *APIServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	s.wg.Wait()
	s.servers = nil
	return first
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, APIError{Error: msg})
}

func reqContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 5*time.Second)
}

func (s *APIServer) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqContext(r)
	defer cancel()
	st, err := s.b.Status(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *APIServer) attacks(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqContext(r)
	defer cancel()
	active, recent, err := s.b.Attacks(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Attacks{Active: nonNil(active), Recent: nonNil(recent)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *APIServer) mitigations(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqContext(r)
	defer cancel()
	act, err := s.b.Active(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	peers, err := s.b.Peers(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := Mitigations{Mitigations: []MitigationView{}}
	for _, m := range act {
		v := MitigationView{Mitigation: m, Peers: []string{}}
		if !m.DryRun {
			fam := m.Announcement.Family()
			for _, p := range peers {
				if _, ok := p.Advertised[fam]; ok && p.Established {
					name := p.Name
					name = cmp.Or(name, p.Address)
					v.Peers = append(v.Peers, name)
				}
			}
		}
		out.Mitigations = append(out.Mitigations, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *APIServer) hosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by := q.Get("by")
	by = cmp.Or(by, "pps")
	if by != "pps" && by != "bps" && by != "flows" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("by=%q: use pps, bps or flows", by))
		return
	}
	var dir detect.Direction
	if d := q.Get("direction"); d != "" {
		if err := dir.UnmarshalText([]byte(d)); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	n := 20
	if v := q.Get("n"); v != "" {
		x, err := strconv.ParseUint(v, 10, 16)
		if err != nil || x == 0 || x > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("n=%q: use a number from 1 to 1000", v))
			return
		}
		n = int(x)
	}
	writeJSON(w, http.StatusOK, Hosts{By: by, Direction: dir.String(), Hosts: nonNil(s.b.Top(n, by, dir))})
}

func (s *APIServer) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad request body: more than one JSON value")
		return
	}
	a, d, err := ParseBan(req, s.b.Policy().BGP)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	reason := req.Reason
	reason = cmp.Or(reason, "manual ban")
	ctx, cancel := reqContext(r)
	defer cancel()
	mt, err := s.b.Ban(ctx, Ban{Announcement: a, Duration: d, Reason: reason})
	switch {
	case errors.Is(err, flowspec.ErrRefused):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("manual ban", "key", mt.Key, "duration", d.String(), "reason", reason)
		writeJSON(w, http.StatusCreated, mt)
	}
}

func (s *APIServer) unban(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := reqContext(r)
	defer cancel()
	q := r.URL.Query()
	var keys []string
	switch {
	case q.Get("key") != "":
		keys = []string{q.Get("key")}
	case q.Get("prefix") != "":
		p, err := parsePrefixOrAddr(q.Get("prefix"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		act, err := s.b.Active(ctx)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		for _, mt := range act {
			if mt.Announcement.Destination() == p {
				keys = append(keys, mt.Key)
			}
		}
	default:
		writeError(w, http.StatusBadRequest, "give key=KEY or prefix=ADDRESS")
		return
	}
	if len(keys) == 0 {
		writeError(w, http.StatusNotFound, "no mitigation for "+q.Get("prefix"))
		return
	}
	for _, k := range keys {
		if err := s.b.Unban(ctx, k); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrNotFound) {
				code = http.StatusNotFound
			}
			writeError(w, code, err.Error())
			return
		}
		s.log.Info("manual unban", "key", k)
	}
	writeJSON(w, http.StatusOK, map[string][]string{"withdrawn": keys})
}

func (s *APIServer) reload(w http.ResponseWriter, r *http.Request) {
	if err := s.b.Reload(); err != nil {
		if errors.Is(err, ErrNoConfigPath) {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		var cerr *policies.Error
		if errors.As(err, &cerr) {
			msgs := make([]string, len(cerr.Diags))
			for i, d := range cerr.Diags {
				msgs[i] = policies.FormatDiagnostic(d)
			}
			writeError(w, http.StatusUnprocessableEntity, strings.Join(msgs, "\n"))
			return
		}
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "reloaded"})
}
