package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// Timeouts of the lab lifecycle.
const (
	labSetupTimeout  = 30 * time.Second
	routerStartLimit = 15 * time.Second
	labCommandLimit  = 10 * time.Second
)

// EnvKeepLab names the environment variable that keeps a lab's directory
// of configurations and logs after the test when set to "1" (the
// namespaces and daemons are removed all the same).
const EnvKeepLab = "FLOODGATE_LAB_KEEP"

// Lab is a Topology brought up in network namespaces by Up: one namespace
// per node, veth pairs with their addresses, and a routing daemon running
// in each router node. The Lab owns every namespace and daemon it created
// and removes them, by PID and by name, when the test that called Up ends,
// whether it passed, failed or was interrupted by SIGINT or SIGTERM.
//
// Methods may be called from any goroutine, including subtests of the test
// that called Up; methods that take a testing.TB report to that TB.
type Lab struct {
	topo     Topology
	links    []linkAddrs
	sessions []Session
	// id prefixes the namespace names: "fgl<pid>x<hex>".
	id string
	// dir holds one directory per node with its configuration and logs.
	dir   string
	netns map[string]string

	mu      sync.Mutex
	routers map[string]labRouter
	started map[string]time.Time
	created []string // namespaces created, in order

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// labRouter is a router daemon run by a Lab.
type labRouter interface {
	Router
	// pids lists the PIDs of the router's processes.
	pids() []int
	// logExcerpt returns the interesting part of the router's logs.
	logExcerpt() string
}

// nsPrefix starts the name of every namespace a Lab creates; the PID of
// the test process follows, so a namespace left behind by a killed test
// can be attributed and swept (see sweepStaleNamespaces).
const nsPrefix = "fgl"

var staleNSRE = regexp.MustCompile(`^` + nsPrefix + `(\d+)x[0-9a-f]+-[a-z0-9]+$`)

// Up brings topo up and returns once every router daemon answers on its
// control socket; the sessions come up once the test starts the controller
// in the ctl namespace (WaitSessions waits for them). Namespace names are
// unique per call, so parallel tests never collide. Up registers the
// teardown with t.Cleanup and also runs it on SIGINT or SIGTERM: daemons
// are stopped by PID (SIGTERM, then SIGKILL), then the namespaces are
// deleted and the lab directory removed. When the test failed, the
// daemons' log excerpts are logged first.
//
// Up calls RequireRoot for ip and the daemons topo needs, so it skips the
// test (or fails it when integration prerequisites are enforced) when one
// is missing.
func Up(t testing.TB, topo Topology) *Lab {
	t.Helper()
	RequireRoot(t, topo.requiredBinaries()...)
	links, err := topo.resolve()
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("lab up: random id: %v", err)
	}
	l := &Lab{
		topo:     topo,
		links:    links,
		sessions: topo.sessions(links),
		id:       fmt.Sprintf("%s%dx%s", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:])),
		netns:    make(map[string]string, len(topo.Nodes)),
		routers:  make(map[string]labRouter),
		started:  make(map[string]time.Time),
		done:     make(chan struct{}),
	}
	for _, n := range topo.Nodes {
		l.netns[n.Name] = l.id + "-" + n.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), labSetupTimeout)
	defer cancel()
	for _, msg := range sweepStaleNamespaces(ctx) {
		t.Log(msg)
	}

	dir, err := os.MkdirTemp("", "fglab-")
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	// FRR drops privileges to user frr and must reach its directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	l.dir = dir
	t.Cleanup(func() {
		if t.Failed() {
			l.logExcerpts(t.Logf)
		}
		if err := l.close(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
		if os.Getenv(EnvKeepLab) == "1" {
			t.Logf("lab directory kept: %s", l.dir)
		}
	})
	l.relaySignals()

	if err := l.setup(ctx); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	if err := l.startRouters(ctx); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l
}

// requiredBinaries lists the binaries Up needs for the topology.
func (t Topology) requiredBinaries() []string {
	bins := []string{"ip"}
	seen := map[Kind]bool{}
	for _, n := range t.Nodes {
		if seen[n.Kind] {
			continue
		}
		seen[n.Kind] = true
		switch n.Kind {
		case KindFRR:
			bins = append(bins, "vtysh", frrZebra, frrBGPd)
		case KindBIRD:
			bins = append(bins, "bird", "birdc")
		case KindGoBGP:
			bins = append(bins, "gobgpd", "gobgp")
		case KindExaBGP:
			bins = append(bins, "exabgp", "sh", "cat")
		}
	}
	return bins
}

// relaySignals tears the lab down on SIGINT or SIGTERM, then delivers the
// signal again with its default action, so an interrupted test leaves no
// daemon or namespace behind. It stops listening when the lab is closed.
func (l *Lab) relaySignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(ch)
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "lab %s: %v: tearing down\n", l.id, sig)
			l.logExcerpts(func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
			if err := l.close(); err != nil {
				fmt.Fprintf(os.Stderr, "lab %s teardown: %v\n", l.id, err)
			}
			signal.Stop(ch)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
		case <-l.done:
		}
	}()
}

// close stops every router, deletes the namespaces and removes the lab
// directory. It is idempotent.
func (l *Lab) close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.mu.Lock()
		routers := make([]labRouter, 0, len(l.routers))
		for _, r := range l.routers {
			routers = append(routers, r)
		}
		created := l.created
		l.mu.Unlock()

		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, r := range routers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Stop(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), labSetupTimeout)
		defer cancel()
		for i := len(created) - 1; i >= 0; i-- {
			if _, err := run(ctx, "ip", "netns", "del", created[i]); err != nil {
				errs = append(errs, err)
			}
		}
		if l.dir != "" && os.Getenv(EnvKeepLab) != "1" {
			if err := os.RemoveAll(l.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// logExcerpts logs every router's log excerpt with logf.
func (l *Lab) logExcerpts(logf func(format string, args ...any)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.topo.Nodes {
		if r, ok := l.routers[n.Name]; ok {
			logf("lab router %s (%s, netns %s, pids %v):\n%s", n.Name, n.Kind, l.netns[n.Name], r.pids(), r.logExcerpt())
		}
	}
}

// sweepStaleNamespaces deletes namespaces left by a lab whose test process
// is gone, when no process runs in them any more, and returns a message
// for each one it deleted or had to leave.
func sweepStaleNamespaces(ctx context.Context) []string {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return nil
	}
	var msgs []string
	for _, e := range entries {
		m := staleNSRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		out, err := run(ctx, "ip", "netns", "pids", e.Name())
		if err != nil {
			continue
		}
		if pids := strings.Fields(out); len(pids) > 0 {
			msgs = append(msgs, fmt.Sprintf("stale lab namespace %s (test pid %d gone) still has processes %v; left alone", e.Name(), pid, pids))
			continue
		}
		if _, err := run(ctx, "ip", "netns", "del", e.Name()); err == nil {
			msgs = append(msgs, fmt.Sprintf("deleted stale lab namespace %s (test pid %d gone)", e.Name(), pid))
		}
	}
	return msgs
}

// setup creates the namespaces, links, addresses and static routes.
func (l *Lab) setup(ctx context.Context) error {
	for _, n := range l.topo.Nodes {
		ns := l.netns[n.Name]
		if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return err
		}
		l.mu.Lock()
		l.created = append(l.created, ns)
		l.mu.Unlock()
		if _, err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		// No duplicate address detection on the links created next, not
		// even for link-local addresses (FRR waits for one before it opens
		// an IPv6 session).
		if _, err := run(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"); err != nil {
			return err
		}
	}
	for _, ln := range l.links {
		nsA, nsB := l.netns[ln.A], l.netns[ln.B]
		if _, err := run(ctx, "ip", "link", "add", ln.AIf, "netns", nsA, "type", "veth", "peer", "name", ln.BIf, "netns", nsB); err != nil {
			return err
		}
		for _, side := range []struct {
			ns, ifname string
			a4, a6     netip.Prefix
		}{{nsA, ln.AIf, ln.A4, ln.A6}, {nsB, ln.BIf, ln.B4, ln.B6}} {
			if _, err := run(ctx, "ip", "-n", side.ns, "addr", "add", side.a4.String(), "dev", side.ifname); err != nil {
				return err
			}
			if _, err := run(ctx, "ip", "-n", side.ns, "addr", "add", side.a6.String(), "dev", side.ifname, "nodad"); err != nil {
				return err
			}
			if _, err := run(ctx, "ip", "-n", side.ns, "link", "set", side.ifname, "up"); err != nil {
				return err
			}
		}
	}
	for _, n := range l.topo.Nodes {
		ns := l.netns[n.Name]
		for _, p := range n.Loopback {
			args := []string{"ip", "-n", ns, "addr", "add", p.String(), "dev", "lo"}
			if p.Addr().Is6() {
				args = append(args, "nodad")
			}
			if _, err := run(ctx, args...); err != nil {
				return err
			}
		}
		if n.Forwarding {
			if _, err := run(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
				return err
			}
		}
		routes := n.Routes
		if n.Kind == KindFRR {
			routes = append(routes, frrDiscardRoutes...)
		}
		for _, r := range routes {
			args := []string{"ip", "-n", ns}
			if r.Prefix.Addr().Is6() {
				args = append(args, "-6")
			}
			if r.Via.IsValid() {
				args = append(args, "route", "add", r.Prefix.String(), "via", r.Via.String())
			} else {
				args = append(args, "route", "add", "blackhole", r.Prefix.String())
			}
			if _, err := run(ctx, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// startRouters starts every router node's daemon, in parallel.
func (l *Lab) startRouters(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, n := range l.topo.Nodes {
		if !n.Kind.IsRouter() {
			continue
		}
		g.Go(func() error {
			_, err := l.startRouter(ctx, n)
			return err
		})
	}
	return g.Wait()
}

// startRouter starts the daemon of router node n and records it.
func (l *Lab) startRouter(ctx context.Context, n Node) (labRouter, error) {
	nodeDir := filepath.Join(l.dir, n.Name)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", n.Name, err)
	}
	spec := routerSpec{
		node:     n,
		routerID: l.topo.routerID(n, l.links),
		netns:    l.netns[n.Name],
		dir:      nodeDir,
		sessions: nodeSessions(l.sessions, n.Name),
	}
	ctx, cancel := context.WithTimeout(ctx, routerStartLimit)
	defer cancel()
	var (
		r   labRouter
		err error
	)
	start := time.Now()
	switch n.Kind {
	case KindFRR:
		r, err = started(startFRR(ctx, spec))
	case KindBIRD:
		r, err = started(startBIRD(ctx, spec))
	case KindGoBGP:
		r, err = started(startGoBGPEdge(ctx, spec))
	case KindExaBGP:
		r, err = started(startExaBGP(ctx, spec))
	default:
		return nil, fmt.Errorf("start %s: kind %s is not a router", n.Name, n.Kind)
	}
	if r != nil {
		l.mu.Lock()
		l.routers[n.Name] = r
		l.started[n.Name] = start
		l.mu.Unlock()
	}
	if err != nil {
		return r, fmt.Errorf("start %s %s in %s: %w", n.Kind, n.Name, spec.netns, err)
	}
	return r, nil
}

// started converts the result of a router's start function, keeping a nil
// pointer (nothing started) a nil interface.
func started[T any, P interface {
	*T
	labRouter
}](p P, err error) (labRouter, error) {
	if p == nil {
		return nil, err
	}
	return p, err
}

// routerSpec is what a router daemon needs to start.
type routerSpec struct {
	node     Node
	routerID netip.Addr
	netns    string
	dir      string
	sessions []Session
}

// Topology returns the topology the lab was brought up from.
func (l *Lab) Topology() Topology { return l.topo }

// Sessions returns the BGP sessions of the topology, with their addresses.
func (l *Lab) Sessions() []Session { return append([]Session(nil), l.sessions...) }

// Netns returns the name of node's network namespace, or "" if there is no
// such node.
func (l *Lab) Netns(node string) string { return l.netns[node] }

// Dir returns the directory holding each node's configuration and logs.
func (l *Lab) Dir() string { return l.dir }

// Addr returns node's IPv4 and IPv6 addresses on its link to peer; they
// are invalid if the two nodes are not linked.
func (l *Lab) Addr(node, peer string) (v4, v6 netip.Addr) {
	for _, ln := range l.links {
		switch {
		case ln.A == node && ln.B == peer:
			return ln.A4.Addr(), ln.A6.Addr()
		case ln.B == node && ln.A == peer:
			return ln.B4.Addr(), ln.B6.Addr()
		}
	}
	return netip.Addr{}, netip.Addr{}
}

// Exec returns a command that runs args in node's namespace. It has the
// lab's parent-death signal, so it dies with the test process; the caller
// owns it (start, wait, kill).
func (l *Lab) Exec(node string, args ...string) *exec.Cmd {
	return netnsCommand(l.netns[node], args...)
}

// Routers returns the names of the router nodes, in topology order.
func (l *Lab) Routers() []string {
	var out []string
	for _, n := range l.topo.Nodes {
		if n.Kind.IsRouter() {
			out = append(out, n.Name)
		}
	}
	return out
}

// router returns the running router of node name.
func (l *Lab) router(name string) (labRouter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.routers[name]
	if !ok {
		return nil, fmt.Errorf("lab has no router %q (routers: %v)", name, l.Routers())
	}
	return r, nil
}

// Router returns the router running in node name. After RestartRouter it
// returns the new instance.
func (l *Lab) Router(t testing.TB, name string) Router {
	t.Helper()
	r, err := l.router(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// FRR returns the FRR router of node name.
func (l *Lab) FRR(t testing.TB, name string) *FRR {
	t.Helper()
	return routerAs[*FRR](t, l, name)
}

// BIRD returns the BIRD router of node name.
func (l *Lab) BIRD(t testing.TB, name string) *BIRD {
	t.Helper()
	return routerAs[*BIRD](t, l, name)
}

// ExaBGP returns the ExaBGP recorder of node name.
func (l *Lab) ExaBGP(t testing.TB, name string) *ExaBGP {
	t.Helper()
	return routerAs[*ExaBGP](t, l, name)
}

// GoBGP returns the gobgpd router of node name.
func (l *Lab) GoBGP(t testing.TB, name string) *GoBGP {
	t.Helper()
	return routerAs[*GoBGP](t, l, name)
}

func routerAs[R labRouter](t testing.TB, l *Lab, name string) R {
	t.Helper()
	r, err := l.router(name)
	if err != nil {
		t.Fatal(err)
	}
	typed, ok := r.(R)
	if !ok {
		t.Fatalf("lab router %q is a %T", name, r)
	}
	return typed
}

// RestartRouter stops the router of node name (SIGTERM, then SIGKILL) and
// starts it again from the same configuration and directory; its sessions
// go down and come up again. It returns the new instance, which Router and
// the typed accessors return from then on. It must be called from the
// test's goroutine; see Restart otherwise.
func (l *Lab) RestartRouter(t testing.TB, name string) Router {
	t.Helper()
	r, err := l.Restart(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Restart is RestartRouter returning an error, for use from any
// goroutine. A router that had crashed is started again too; the crash is
// reported in the error along with the new instance.
func (l *Lab) Restart(ctx context.Context, name string) (Router, error) {
	old, err := l.router(name)
	if err != nil {
		return nil, err
	}
	stopErr := old.Stop()
	n, _ := l.topo.node(name)
	r, err := l.startRouter(ctx, n)
	if err != nil {
		return r, fmt.Errorf("restart %s: %w", name, errors.Join(stopErr, err))
	}
	if stopErr != nil {
		return r, fmt.Errorf("restart %s: stop: %w", name, stopErr)
	}
	return r, nil
}

// SessionUp reports when one session came up.
type SessionUp struct {
	// Router names the router node and Kind its kind.
	Router string
	Kind   Kind
	// Peer is the controller's address of the session.
	Peer netip.Addr
	// After is the time from the call of WaitSessions to the session being
	// seen Established.
	After time.Duration
}

// WaitSessions waits, in parallel, until every session of every router is
// Established, and returns how long each took. It fails on the first error
// or when ctx is done.
func (l *Lab) WaitSessions(ctx context.Context) ([]SessionUp, error) {
	start := time.Now()
	ups := make([]SessionUp, len(l.sessions))
	g, ctx := errgroup.WithContext(ctx)
	for i, s := range l.sessions {
		g.Go(func() error {
			r, err := l.router(s.Router)
			if err != nil {
				return err
			}
			if err := r.WaitEstablished(ctx, s.CtlAddr); err != nil {
				return fmt.Errorf("router %s: %w", s.Router, err)
			}
			n, _ := l.topo.node(s.Router)
			ups[i] = SessionUp{Router: s.Router, Kind: n.Kind, Peer: s.CtlAddr, After: time.Since(start)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("wait for lab sessions: %w", err)
	}
	return ups, nil
}

// GoBGPConfig returns the configuration of a gobgpd run in ctl node ctl as
// a stand-in for the controller: its AS and router id, and one active
// neighbor per session of that node, with the session's families.
func (l *Lab) GoBGPConfig(ctl string) GoBGPConfig {
	n, _ := l.topo.node(ctl)
	cfg := GoBGPConfig{
		Name:     "gobgpd@" + ctl,
		ASN:      n.ASN,
		RouterID: l.topo.routerID(n, l.links),
	}
	for _, s := range l.sessions {
		if s.Ctl != ctl {
			continue
		}
		cfg.Neighbors = append(cfg.Neighbors, GoBGPNeighbor{
			Address:      s.RouterAddr,
			ASN:          s.RouterASN,
			LocalAddress: s.CtlAddr,
			Families:     s.Families,
		})
	}
	return cfg
}

// StartCtlGoBGP starts gobgpd in ctl node ctl with GoBGPConfig(ctl), for
// tests that drive announcements with the gobgp CLI (GoBGP.CLI). It is
// stopped by the test's cleanup.
func (l *Lab) StartCtlGoBGP(t testing.TB, ctl string) *GoBGP {
	t.Helper()
	ns := l.Netns(ctl)
	if ns == "" {
		t.Fatalf("lab has no node %q", ctl)
	}
	return StartGoBGPIn(t, ns, l.GoBGPConfig(ctl))
}

// KernelRoute returns the kernel's route for exactly prefix in node's
// namespace, as `ip route show exact` prints it ("blackhole 203.0.113.10
// proto bgp metric 20"), or "" if there is none.
func (l *Lab) KernelRoute(ctx context.Context, node string, prefix netip.Prefix) (string, error) {
	ns := l.Netns(node)
	if ns == "" {
		return "", fmt.Errorf("lab has no node %q", node)
	}
	fam := "-4"
	if prefix.Addr().Is6() {
		fam = "-6"
	}
	out, err := run(ctx, "ip", "-n", ns, fam, "route", "show", "exact", prefix.String())
	return strings.TrimSpace(out), err
}

// WaitKernelRoute polls KernelRoute until match accepts the route line
// ("" when there is no route) and returns that line.
func (l *Lab) WaitKernelRoute(ctx context.Context, node string, prefix netip.Prefix, match func(string) bool) (string, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		line, err := l.KernelRoute(ctx, node, prefix)
		if err == nil && match(line) {
			return line, nil
		}
		select {
		case <-ctx.Done():
			return line, fmt.Errorf("wait for kernel route %s in %s: last %q (err %v): %w", prefix, node, line, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// run runs a short command and returns its standard output; the error
// includes the command line and its standard error.
func run(ctx context.Context, argv ...string) (string, error) {
	return runInput(ctx, "", argv...)
}

// runInput is run with input on the command's standard input.
func runInput(ctx context.Context, input string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, labCommandLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Kind returns the kind of node name ("" if there is no such node).
func (l *Lab) Kind(name string) Kind {
	n, _ := l.topo.node(name)
	return n.Kind
}

// WaitRoutes waits, in parallel, until every router of the lab holds
// exactly the routes of want of family fam, as WaitTable compares them,
// and returns the errors of the routers that did not before ctx was done.
func (l *Lab) WaitRoutes(ctx context.Context, fam Family, want []Route) error {
	names := l.Routers()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.router(name)
			if err == nil {
				err = WaitTable(ctx, r, l.Kind(name), fam, want)
			}
			if err != nil {
				errs[i] = fmt.Errorf("router %s (%s): %w", name, l.Kind(name), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
