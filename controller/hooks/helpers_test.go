package hooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// waitFor polls cond until it holds, failing the test after 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits until hook i of d has finished n events (sent or failed)
// and returns its stats.
func waitDone(t testing.TB, d *Dispatcher, i int, n uint64) HookStats {
	t.Helper()
	var s HookStats
	waitFor(t, fmt.Sprintf("hook %d to finish %d events", i, n), func() bool {
		s = d.Stats()[i]
		return s.Sent+s.Failed >= n
	})
	return s
}

// start makes a dispatcher from cfg, applies opts to it before starting
// it, and stops it when the test ends.
func start(t testing.TB, cfg Config, logger hclog.Logger, opts ...func(*Dispatcher)) *Dispatcher {
	t.Helper()
	d, err := New(cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, o := range opts {
		o(d)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return d
}

// script writes a shell script with body into a new temporary directory
// and returns its path and the directory, where it may write its results.
// The body may use $OUT for that directory.
func script(t testing.TB, body string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "hook.sh")
	text := fmt.Sprintf("#!/bin/sh\nOUT=%q\n%s\n", dir, body)
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// syncBuffer is a log output the test can read while hooks write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines of the log that contain s.
func (b *syncBuffer) lines(s string) []string {
	var out []string
	for l := range strings.Lines(b.String()) {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// testLogger returns a logger writing to a buffer, at trace level.
func testLogger() (hclog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Trace, Output: buf}), buf
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// request is what the test server received.
type request struct {
	Method      string
	Path        string
	ContentType string
	UserAgent   string
	Token       string
	Body        string
}

// server is a webhook receiver on loopback that answers each request with
// the next status of a list, the last one repeating. Status 0 answers
// nothing until the request is cancelled or the test ends.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	reqs     []request
	arrived  chan struct{}
	release  chan struct{}
}

func newServer(t testing.TB, statuses ...int) *server {
	t.Helper()
	s := &server{statuses: statuses, arrived: make(chan struct{}, 1024), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	status := s.statuses[min(len(s.reqs), len(s.statuses)-1)]
	s.reqs = append(s.reqs, request{
		Method:      r.Method,
		Path:        r.URL.Path,
		ContentType: r.Header.Get("Content-Type"),
		UserAgent:   r.Header.Get("User-Agent"),
		Token:       r.Header.Get("X-Token"),
		Body:        string(body),
	})
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	if status == 0 {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	if status/100 == 3 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "answer %d", status)
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// closedURL returns an http URL on loopback where nothing listens.
func closedURL(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}
