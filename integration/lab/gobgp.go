package lab

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// GoBGPConfig describes a gobgpd instance: on loopback addresses
// (StartGoBGP) or in a network namespace (StartGoBGPIn).
type GoBGPConfig struct {
	// Name labels the instance in logs and errors; default
	// "gobgpd@<ListenAddr>", or "gobgpd@<namespace>" in a namespace.
	Name string
	// ASN is the local AS number. Required.
	ASN uint32
	// RouterID is the BGP identifier; default ListenAddr when it is IPv4.
	RouterID netip.Addr
	// ListenAddr is the only address gobgpd listens on for BGP and the
	// source of its outgoing sessions. On loopback it must be a loopback
	// address; any address of 127.0.0.0/8 works on Linux ("127.0.0.2").
	// Default 127.0.0.1; in a namespace, default none: gobgpd listens on
	// every address and RouterID is required.
	ListenAddr netip.Addr
	// ListenPort is the BGP port gobgpd listens on; 0 picks a free port
	// on loopback (read it back with BGPAddr), and means 179 in a
	// namespace.
	ListenPort int
	// Neighbors are the configured BGP peers.
	Neighbors []GoBGPNeighbor
	// LogLevel is gobgpd's log level; default "debug".
	LogLevel string
}

// GoBGPNeighbor is one configured peer of a gobgpd instance.
type GoBGPNeighbor struct {
	// Address is the peer's address; on loopback it must be a loopback
	// address.
	Address netip.Addr
	// LocalAddress is the source address of the session; default
	// ListenAddr, or the kernel's choice when that is unset.
	LocalAddress netip.Addr
	// Port is the peer's BGP port, used when connecting to it; default 179.
	Port int
	// ASN is the peer's AS number. Required.
	ASN uint32
	// Passive makes gobgpd wait for the peer to connect. Between two gobgpd
	// instances one side should be passive: active/active sessions collide
	// and can take 20 s to come up.
	Passive bool
	// Password is the TCP MD5 signature key (RFC 2385); empty: none.
	Password string
	// Families are the negotiated families; default DefaultFamilies.
	Families []Family
}

// GoBGP is a running gobgpd started by StartGoBGP. Its methods may be called
// from any goroutine.
type GoBGP struct {
	name    string
	cfg     GoBGPConfig
	apiAddr netip.AddrPort
	// netns is the namespace gobgpd runs in ("" on loopback); apiSock is
	// then the unix socket of its API, reachable from the test process.
	netns   string
	apiSock string
	logPath string
	cmd     *exec.Cmd

	// exited is closed once the process has been waited for; waitErr is
	// set before.
	exited  chan struct{}
	waitErr error

	conn   *grpc.ClientConn
	client api.GobgpApiClient

	stopOnce sync.Once
	stopErr  error
}

var _ Router = (*GoBGP)(nil)

// Timeouts of the gobgpd lifecycle.
const (
	goBGPStartTimeout = 15 * time.Second
	goBGPStopGrace    = 3 * time.Second
	logWarnLines      = 30
	logTailLines      = 60
)

// StartGoBGP starts gobgpd with cfg and returns once its gRPC API answers.
// It writes the configuration and the daemon's log under t.TempDir(),
// listens for the API on a free port of 127.0.0.1, and registers a cleanup
// that stops exactly this process and, if the test failed, logs the tail of
// the daemon's log (its warnings, then its last lines). It calls
// Require(t, "gobgpd") first, so it skips or fails the test when gobgpd is
// not installed.
//
// gobgpd 3.10 (Debian 12) treats an UPDATE whose IPv4 NEXT_HOP is in
// 127.0.0.0/8 as a withdraw ("invalid nexthop address" in its log): an IPv4
// unicast route announced to it over loopback never shows up unless it
// carries a next hop outside 127/8 (192.0.2.1, say). MP_REACH next hops
// (IPv6 unicast, FlowSpec) are not checked.
func StartGoBGP(t testing.TB, cfg GoBGPConfig) *GoBGP {
	t.Helper()
	Require(t, "gobgpd")

	cfg, err := cfg.withDefaults("")
	if err != nil {
		t.Fatalf("start gobgpd: %v", err)
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = FreePort(t, cfg.ListenAddr.String())
	}
	launch := goBGPLaunch{
		cfg:     cfg,
		dir:     t.TempDir(),
		apiAddr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(FreePort(t, "127.0.0.1"))),
	}
	return launch.startForTest(t)
}

// goBGPNetnsAPIPort is the TCP port of the API of a gobgpd run in a
// namespace, on that namespace's loopback (for the gobgp CLI).
const goBGPNetnsAPIPort = 50051

// StartGoBGPIn starts gobgpd with cfg in network namespace ns (a Lab's
// Netns) and returns once its API answers. Addresses need not be loopback
// ones; ListenPort defaults to 179. The test process reaches the API
// through a unix socket; the gobgp CLI (CLI) runs in the namespace against
// 127.0.0.1:50051 there, so run one gobgpd per namespace. The test's
// cleanup stops exactly this process and logs its log excerpt if the test
// failed.
func StartGoBGPIn(t testing.TB, ns string, cfg GoBGPConfig) *GoBGP {
	t.Helper()
	Require(t, "gobgpd", "ip")
	cfg, err := cfg.withDefaults(ns)
	if err != nil {
		t.Fatalf("start gobgpd in %s: %v", ns, err)
	}
	// A short directory: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "fggobgp-")
	if err != nil {
		t.Fatalf("start gobgpd in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	launch := goBGPLaunch{
		cfg:     cfg,
		netns:   ns,
		dir:     dir,
		apiAddr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), goBGPNetnsAPIPort),
		apiSock: filepath.Join(dir, "api.sock"),
	}
	return launch.startForTest(t)
}

// goBGPLaunch is how to run one gobgpd.
type goBGPLaunch struct {
	cfg     GoBGPConfig
	netns   string
	dir     string
	apiAddr netip.AddrPort
	apiSock string
}

// startForTest starts gobgpd, registers its stop with t.Cleanup and waits
// for its API.
func (l goBGPLaunch) startForTest(t testing.TB) *GoBGP {
	t.Helper()
	g, err := l.start()
	if err != nil {
		t.Fatalf("start gobgpd %s: %v", l.cfg.Name, err)
	}
	t.Cleanup(func() {
		// Report a failed stop only if the test did not stop (and check)
		// the daemon itself.
		stopped := false
		g.stopOnce.Do(func() { g.stopErr, stopped = g.stop(), true })
		if stopped && g.stopErr != nil {
			t.Errorf("stop %s: %v", g.name, g.stopErr)
		}
		if t.Failed() {
			t.Logf("%s (pid %d) log excerpt:\n%s", g.name, g.PID(), g.logExcerpt())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), goBGPStartTimeout)
	defer cancel()
	if err := g.connect(ctx); err != nil {
		t.Fatalf("start %s (pid %d): %v", g.name, g.PID(), err)
	}
	return g
}

// start writes the configuration and starts the process; the caller owns
// it and waits for the API with connect.
func (l goBGPLaunch) start() (*GoBGP, error) {
	cfgPath := filepath.Join(l.dir, "gobgpd.toml")
	if err := os.WriteFile(cfgPath, []byte(l.cfg.toml()), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	hosts := l.apiAddr.String()
	if l.apiSock != "" {
		// gobgpd does not remove a stale socket left by a killed instance.
		if err := os.Remove(l.apiSock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale api socket: %w", err)
		}
		hosts = "unix://" + l.apiSock + "," + hosts
	}
	logPath := filepath.Join(l.dir, "gobgpd.log")
	p, err := startProcess(l.cfg.Name, l.netns, logPath, nil,
		"gobgpd",
		"-f", cfgPath,
		"-p",
		"--pprof-disable",
		"--api-hosts", hosts,
		"-l", l.cfg.LogLevel,
	)
	if err != nil {
		return nil, err
	}
	g := &GoBGP{
		name:    l.cfg.Name,
		cfg:     l.cfg,
		apiAddr: l.apiAddr,
		netns:   l.netns,
		apiSock: l.apiSock,
		logPath: logPath,
		cmd:     p.cmd,
		exited:  make(chan struct{}),
	}
	go func() {
		<-p.exited
		g.waitErr = p.waitErr
		close(g.exited)
	}()
	return g, nil
}

// withDefaults fills in defaults and validates the configuration for a
// gobgpd on loopback (netns "") or in namespace netns.
func (c GoBGPConfig) withDefaults(netns string) (GoBGPConfig, error) {
	loopback := netns == ""
	if c.ASN == 0 {
		return c, errors.New("asn is required")
	}
	if !c.ListenAddr.IsValid() && loopback {
		c.ListenAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if loopback && !c.ListenAddr.IsLoopback() {
		return c, fmt.Errorf("listen address %s is not a loopback address", c.ListenAddr)
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return c, fmt.Errorf("listen port %d out of range", c.ListenPort)
	}
	if c.ListenPort == 0 && !loopback {
		c.ListenPort = 179
	}
	if !c.RouterID.IsValid() {
		if !c.ListenAddr.Is4() {
			return c, fmt.Errorf("router id is required with listen address %v", c.ListenAddr)
		}
		c.RouterID = c.ListenAddr
	}
	if !c.RouterID.Is4() {
		return c, fmt.Errorf("router id %s is not an IPv4 address", c.RouterID)
	}
	if c.Name == "" {
		if loopback {
			c.Name = "gobgpd@" + c.ListenAddr.String()
		} else {
			c.Name = "gobgpd@" + netns
		}
	}
	if c.LogLevel == "" {
		c.LogLevel = "debug"
	}
	neighbors := make([]GoBGPNeighbor, len(c.Neighbors))
	for i, n := range c.Neighbors {
		if !n.Address.IsValid() || (loopback && !n.Address.IsLoopback()) {
			return c, fmt.Errorf("neighbor %d: address %s is not a loopback address", i, n.Address)
		}
		if n.LocalAddress.IsValid() && n.LocalAddress.Is4() != n.Address.Is4() {
			return c, fmt.Errorf("neighbor %s: local address %s of another family", n.Address, n.LocalAddress)
		}
		if n.ASN == 0 {
			return c, fmt.Errorf("neighbor %s: asn is required", n.Address)
		}
		if n.Port == 0 {
			n.Port = 179
		}
		if n.Port < 0 || n.Port > 65535 {
			return c, fmt.Errorf("neighbor %s: port %d out of range", n.Address, n.Port)
		}
		if len(n.Families) == 0 {
			n.Families = DefaultFamilies
		}
		n.Families = slices.Clone(n.Families)
		for _, f := range n.Families {
			if !f.Valid() {
				return c, fmt.Errorf("neighbor %s: unsupported family %q", n.Address, f)
			}
		}
		neighbors[i] = n
	}
	c.Neighbors = neighbors
	return c, nil
}

// toml renders the gobgpd configuration file.
func (c GoBGPConfig) toml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n")
	fmt.Fprintf(&b, "  as = %d\n", c.ASN)
	fmt.Fprintf(&b, "  router-id = %q\n", c.RouterID.String())
	fmt.Fprintf(&b, "  port = %d\n", c.ListenPort)
	if c.ListenAddr.IsValid() {
		fmt.Fprintf(&b, "  local-address-list = [%q]\n", c.ListenAddr.String())
	}
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, "\n[[neighbors]]\n")
		fmt.Fprintf(&b, "  [neighbors.config]\n")
		fmt.Fprintf(&b, "    neighbor-address = %q\n", n.Address.String())
		fmt.Fprintf(&b, "    peer-as = %d\n", n.ASN)
		if n.Password != "" {
			fmt.Fprintf(&b, "    auth-password = %q\n", n.Password)
		}
		fmt.Fprintf(&b, "  [neighbors.timers.config]\n")
		// gobgp v3 raises this to its 5 s minimum; it is the fastest there is.
		fmt.Fprintf(&b, "    connect-retry = 1\n")
		fmt.Fprintf(&b, "  [neighbors.transport.config]\n")
		if local := n.LocalAddress; local.IsValid() {
			fmt.Fprintf(&b, "    local-address = %q\n", local.String())
		} else if c.ListenAddr.IsValid() {
			fmt.Fprintf(&b, "    local-address = %q\n", c.ListenAddr.String())
		}
		fmt.Fprintf(&b, "    remote-port = %d\n", n.Port)
		fmt.Fprintf(&b, "    passive-mode = %t\n", n.Passive)
		// A graceful restart helper, as FRR, BIRD, Junos and EOS are by
		// default (gobgpd is not): it keeps a restarting peer's routes.
		fmt.Fprintf(&b, "  [neighbors.graceful-restart.config]\n")
		fmt.Fprintf(&b, "    enabled = true\n")
		fmt.Fprintf(&b, "    helper-only = true\n")
		fmt.Fprintf(&b, "    notification-enabled = true\n")
		for _, f := range n.Families {
			fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n")
			fmt.Fprintf(&b, "    [neighbors.afi-safis.config]\n")
			fmt.Fprintf(&b, "      afi-safi-name = %q\n", string(f))
			fmt.Fprintf(&b, "    [neighbors.afi-safis.mp-graceful-restart.config]\n")
			fmt.Fprintf(&b, "      enabled = true\n")
		}
	}
	return b.String()
}

// connect waits until the API port accepts connections, dials it and checks
// that the daemon answering is the one configured.
func (g *GoBGP) connect(ctx context.Context) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var d net.Dialer
	network, address, target := "tcp", g.apiAddr.String(), g.apiAddr.String()
	if g.apiSock != "" {
		network, address, target = "unix", g.apiSock, "unix://"+g.apiSock
	}
	for {
		c, err := d.DialContext(ctx, network, address)
		if err == nil {
			if err := c.Close(); err != nil {
				return fmt.Errorf("probe api %s: %w", address, err)
			}
			break
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gobgpd exited before its api answered: %w", g.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("wait for api %s: %w (last error: %v)", address, ctx.Err(), err)
		case <-tick.C:
		}
	}

	conn, err := grpc.DialContext(ctx, target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: pollInterval, Multiplier: 1.6, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
	)
	if err != nil {
		return fmt.Errorf("dial api %s: %w", target, err)
	}
	g.conn = conn
	g.client = api.NewGobgpApiClient(conn)

	for {
		resp, err := g.client.GetBgp(ctx, &api.GetBgpRequest{})
		if err == nil && resp.GetGlobal().GetAsn() == 0 {
			// gobgpd serves its API before it has read its config
			// file; on a loaded machine the gap is seconds. AS 0 is
			// "not configured yet": ask again.
			err = errors.New("api answers, config not loaded yet")
		} else if err == nil {
			gl := resp.GetGlobal()
			if gl.GetAsn() != g.cfg.ASN || gl.GetRouterId() != g.cfg.RouterID.String() || gl.GetListenPort() != int32(g.cfg.ListenPort) {
				return fmt.Errorf("api %s answers for as %d router-id %s port %d, want as %d router-id %s port %d (port taken by another daemon?)",
					target, gl.GetAsn(), gl.GetRouterId(), gl.GetListenPort(), g.cfg.ASN, g.cfg.RouterID, g.cfg.ListenPort)
			}
			return nil
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gobgpd exited before its api answered: %w", g.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("wait for api %s: %w (last error: %v)", target, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// exitErr describes how the process ended; call it only after exited is
// closed.
func (g *GoBGP) exitErr() error {
	if g.waitErr != nil {
		return g.waitErr
	}
	return errors.New("exit status 0")
}

// alive returns an error if the process has exited.
func (g *GoBGP) alive() error {
	select {
	case <-g.exited:
		return fmt.Errorf("%s (pid %d) has exited: %w", g.name, g.PID(), g.exitErr())
	default:
		return nil
	}
}

// PID returns the process id of gobgpd.
func (g *GoBGP) PID() int {
	return g.cmd.Process.Pid
}

// Netns returns the namespace gobgpd runs in, "" on loopback.
func (g *GoBGP) Netns() string {
	return g.netns
}

// pids lists the PID of gobgpd, for the Lab.
func (g *GoBGP) pids() []int {
	return []int{g.PID()}
}

// logExcerpt returns the warnings and the last lines of gobgpd's log.
func (g *GoBGP) logExcerpt() string {
	return logExcerpt(g.logPath, logWarnLines, logTailLines)
}

// Name returns the instance's label.
func (g *GoBGP) Name() string {
	return g.name
}

// BGPAddr returns the address and port gobgpd listens on for BGP; the
// address is invalid for a gobgpd in a namespace listening on every
// address.
func (g *GoBGP) BGPAddr() netip.AddrPort {
	return netip.AddrPortFrom(g.cfg.ListenAddr, uint16(g.cfg.ListenPort))
}

// APIAddr returns the address of gobgpd's gRPC API; for a gobgpd in a
// namespace, it is reachable only inside that namespace.
func (g *GoBGP) APIAddr() netip.AddrPort {
	return g.apiAddr
}

// LogPath returns the path of gobgpd's log file.
func (g *GoBGP) LogPath() string {
	return g.logPath
}

// LogTail returns the last n lines of gobgpd's log, or a note saying why it
// could not be read.
func (g *GoBGP) LogTail(n int) string {
	_, tail, err := readLog(g.logPath, 0, n)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return strings.Join(tail, "\n")
}

// logExcerpt returns, for a failed test, the first warn warning or error
// lines of the log at path (gobgpd logs a rejected UPDATE as a warning long
// before the end) followed by its last tail lines.
func logExcerpt(path string, warn, tail int) string {
	warnings, last, err := readLog(path, warn, tail)
	if err != nil {
		return fmt.Sprintf("(read log %s: %v)", path, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: warnings and errors (first %d) ---\n", path, warn)
	for _, l := range warnings {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "--- last %d lines ---\n", tail)
	b.WriteString(strings.Join(last, "\n"))
	return b.String()
}

// readLog scans the log at path and returns its first warn lines of level
// warning or above and its last tail lines.
func readLog(path string, warn, tail int) (warnings, last []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(warnings) < warn && isWarning(line) {
			warnings = append(warnings, line)
		}
		if tail > 0 {
			if len(last) == tail {
				last = append(last[:0], last[1:]...)
			}
			last = append(last, line)
		}
	}
	if err := sc.Err(); err != nil {
		return warnings, last, fmt.Errorf("read %s: %w", path, err)
	}
	return warnings, last, nil
}

// isWarning reports whether a gobgpd log line (plain format) is a warning or
// worse.
func isWarning(line string) bool {
	for _, l := range []string{"level=warning", "level=error", "level=fatal", "level=panic", "panic:"} {
		if strings.Contains(line, l) {
			return true
		}
	}
	return false
}

// CLI runs the gobgp command-line client against this instance (in its
// namespace, if it runs in one) with args
// (for example "global", "rib", "-a", "ipv4", "add", "203.0.113.10/32") and
// returns its combined output. The error includes the output.
func (g *GoBGP) CLI(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"gobgp", "-u", g.apiAddr.Addr().String(), "-p", strconv.Itoa(int(g.apiAddr.Port()))}, args...)
	if g.netns != "" {
		full = append([]string{"ip", "netns", "exec", g.netns}, full...)
	}
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("gobgp %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// PeerState returns the BGP session state of peer as GoBGP names it
// ("ESTABLISHED", "ACTIVE", ...).
func (g *GoBGP) PeerState(ctx context.Context, peer netip.Addr) (string, error) {
	if err := g.alive(); err != nil {
		return "", err
	}
	stream, err := g.client.ListPeer(ctx, &api.ListPeerRequest{Address: peer.String()})
	if err != nil {
		return "", fmt.Errorf("list peer %s on %s: %w", peer, g.name, err)
	}
	state := ""
	found := false
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("list peer %s on %s: %w", peer, g.name, err)
		}
		p := resp.GetPeer()
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil && a == peer {
			found = true
			state = p.GetState().GetSessionState().String()
		}
	}
	if !found {
		return "", fmt.Errorf("list peer %s on %s: not a configured neighbor", peer, g.name)
	}
	return state, nil
}

// WaitEstablished polls until the session with peer is Established. Between
// two gobgpd instances this takes 5 to 10 s. It returns early with an error
// when ctx is done, peer is not configured, or gobgpd has exited.
func (g *GoBGP) WaitEstablished(ctx context.Context, peer netip.Addr) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := "UNKNOWN"
	for {
		state, err := g.PeerState(ctx, peer)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for session %s-%s: last state %s: %w", g.name, peer, last, ctx.Err())
			}
			return fmt.Errorf("wait for session %s-%s: %w", g.name, peer, err)
		}
		if state == api.PeerState_ESTABLISHED.String() {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for session %s-%s: last state %s: %w", g.name, peer, last, ctx.Err())
		case <-g.exited:
			return fmt.Errorf("wait for session %s-%s: %w", g.name, peer, g.alive())
		case <-tick.C:
		}
	}
}

// Routes lists the global RIB of family fam: routes received from peers that
// were accepted, and routes originated by this instance. They are sorted by
// Prefix, then by From.
func (g *GoBGP) Routes(ctx context.Context, fam Family) ([]Route, error) {
	if err := g.alive(); err != nil {
		return nil, err
	}
	af, err := fam.apiFamily()
	if err != nil {
		return nil, fmt.Errorf("list routes on %s: %w", g.name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := g.client.ListPath(ctx, &api.ListPathRequest{
		TableType:             api.TableType_GLOBAL,
		Family:                af,
		EnableNlriBinary:      true,
		EnableAttributeBinary: true,
	})
	if err != nil {
		return nil, fmt.Errorf("list %s routes on %s: %w", fam, g.name, err)
	}
	var routes []Route
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s routes on %s: %w", fam, g.name, err)
		}
		for _, p := range resp.GetDestination().GetPaths() {
			if p.GetIsWithdraw() {
				continue
			}
			r, err := routeFromPath(fam, p)
			if err != nil {
				return nil, fmt.Errorf("list %s routes on %s: %w", fam, g.name, err)
			}
			routes = append(routes, r)
		}
	}
	slices.SortStableFunc(routes, func(a, b Route) int {
		if c := strings.Compare(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return a.From.Compare(b.From)
	})
	return routes, nil
}

// WaitRoute polls Routes until a route of family fam satisfies match; see
// the package function WaitRoute.
func (g *GoBGP) WaitRoute(ctx context.Context, fam Family, match func(Route) bool) (Route, error) {
	return WaitRoute(ctx, g, fam, match)
}

// WaitNoRoute polls Routes until no route of family fam satisfies match; see
// the package function WaitNoRoute.
func (g *GoBGP) WaitNoRoute(ctx context.Context, fam Family, match func(Route) bool) error {
	return WaitNoRoute(ctx, g, fam, match)
}

// Stop closes the API connection and ends gobgpd: SIGTERM, then SIGKILL if
// it has not exited after a short grace period, then waits for it. It is
// idempotent. It returns an error if gobgpd had already exited on its own,
// which means it crashed or was killed by someone else.
func (g *GoBGP) Stop() error {
	g.stopOnce.Do(func() { g.stopErr = g.stop() })
	return g.stopErr
}

func (g *GoBGP) stop() error {
	var errs []error
	if g.conn != nil {
		if err := g.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close api connection: %w", err))
		}
	}
	select {
	case <-g.exited:
		errs = append(errs, fmt.Errorf("gobgpd (pid %d) exited before stop: %w", g.PID(), g.exitErr()))
		return errors.Join(errs...)
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("send SIGTERM to gobgpd (pid %d): %w", g.PID(), err))
	}
	timer := time.NewTimer(goBGPStopGrace)
	defer timer.Stop()
	select {
	case <-g.exited:
	case <-timer.C:
		if err := g.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("kill gobgpd (pid %d): %w", g.PID(), err))
		}
		<-g.exited
	}
	return errors.Join(errs...)
}

// goBGPEdgeConfig returns the configuration of gobgpd as a Lab's router
// node: passive towards the controller (gobgpd pairs collide when both
// connect), one neighbor per session.
func goBGPEdgeConfig(spec routerSpec) (GoBGPConfig, error) {
	cfg := GoBGPConfig{
		Name:     spec.node.Name + "/gobgpd",
		ASN:      spec.node.ASN,
		RouterID: spec.routerID,
	}
	for _, s := range spec.sessions {
		cfg.Neighbors = append(cfg.Neighbors, GoBGPNeighbor{
			Address:      s.CtlAddr,
			LocalAddress: s.RouterAddr,
			ASN:          s.CtlASN,
			Passive:      true,
			Families:     s.Families,
		})
	}
	// withDefaults checks addresses as for a namespace (containers too).
	return cfg.withDefaults(cmp.Or(spec.netns, "container "+spec.node.Name))
}

// startGoBGPEdge starts gobgpd as a Lab's router node and returns once its
// API answers.
func startGoBGPEdge(ctx context.Context, spec routerSpec) (*GoBGP, error) {
	cfg, err := goBGPEdgeConfig(spec)
	if err != nil {
		return nil, err
	}
	launch := goBGPLaunch{
		cfg:     cfg,
		netns:   spec.netns,
		dir:     spec.dir,
		apiAddr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), goBGPNetnsAPIPort),
		apiSock: filepath.Join(spec.dir, "api.sock"),
	}
	g, err := launch.start()
	if err != nil {
		return nil, err
	}
	if err := g.connect(ctx); err != nil {
		return g, err
	}
	return g, nil
}
