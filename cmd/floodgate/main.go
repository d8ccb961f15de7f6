// Command floodgate is the Floodgate daemon and its command-line tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/cluster"
	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/policies"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 3
	// exitNotRunning: an API command found no daemon.
	exitNotRunning = 4
)

const usage = `usage: floodgate <command> [flags]

commands:
  run      --config PATH   start the daemon (PATH: a file, or a directory of *.hcl files)
  check    --config PATH [--explain ADDR]
                           validate a configuration and print every error;
                           with --explain, what applies to that address
  replay   --config PATH CAPTURE [--sampling N] [--json]
                           run a pcap/pcapng capture through detection and the
                           policy offline: attacks found, announcements it would make
  version                  print the version of floodgate and of its BGP library

talking to a running daemon (flags: --socket PATH, --api URL --token T, --config PATH, --json):
  status                   version, sources, BGP neighbours, detection and mitigation counters
  attacks                  attacks going on and recent ones
  mitigations              what is announced, why, until when
  ban ADDRESS|PREFIX       blackhole (--duration, --reason, --community)
  ban --flowspec RULE      announce a FlowSpec rule (--action, --rate, --redirect, --dscp, --duration)
  unban ADDRESS|PREFIX     withdraw what is announced for it (or --key KEY)
  reload                   reload the configuration
  top                      live view of the busiest hosts (q quits)
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "attacks":
		return cmdAttacks(args[1:], stdout, stderr)
	case "mitigations":
		return cmdMitigations(args[1:], stdout, stderr)
	case "ban":
		return cmdBan(args[1:], stdout, stderr)
	case "unban":
		return cmdUnban(args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "top":
		return cmdTop(args[1:], os.Stdin, stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "floodgate %s\ngobgp %s\n", version, controller.GoBGPVersion())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "floodgate: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("config", "", "configuration file or directory")
}

func parseFlags(name string, fs *flag.FlagSet, path *string, args []string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "floodgate %s: need --config PATH\n", name)
		return false
	}
	return true
}

// load loads the policy and prints every error as file:line:col: message.
func load(path string, stderr io.Writer) (*policies.Policy, bool) {
	pol, err := policies.Load(path)
	if err != nil {
		var cerr *policies.Error
		if errors.As(err, &cerr) {
			for _, d := range cerr.Diags {
				fmt.Fprintln(stderr, policies.FormatDiagnostic(d))
			}
			fmt.Fprintf(stderr, "%d error(s) in %s\n", len(cerr.Diags), path)
		} else {
			fmt.Fprintf(stderr, "floodgate: %v\n", err)
		}
		return nil, false
	}
	return pol, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("check", stderr)
	explain := fs.String("explain", "", "show the hostgroup, thresholds and responses that apply to this address")
	if !parseFlags("check", fs, path, args, stderr) {
		return exitUsage
	}
	pol, ok := load(*path, stderr)
	if !ok {
		return exitConfig
	}
	if *explain != "" {
		addr, err := netip.ParseAddr(*explain)
		if err != nil {
			fmt.Fprintf(stderr, "floodgate check: --explain %q is not an IP address\n", *explain)
			return exitUsage
		}
		fmt.Fprint(stdout, pol.Explain(addr))
		return exitOK
	}
	prefixes := 0
	for _, h := range pol.Hostgroups {
		prefixes += len(h.Prefixes)
	}
	fmt.Fprintf(stdout, "%s: ok (%d file(s), %d hostgroup(s), %d prefix(es), %d source(s), %d neighbor(s))\n",
		*path, len(pol.Files), len(pol.Hostgroups), prefixes, len(pol.Listeners)+len(pol.Mirrors)+len(pol.Pcaps)+len(pol.KafkaSources),
		len(pol.BGP.Neighbors))
	if k := pol.Kafka; k.Enabled() {
		fmt.Fprintf(stdout, "cluster node %q: roles %s, brokers %s\n", k.Node, strings.Join(k.Roles, ", "), strings.Join(k.Brokers, ", "))
	}
	return exitOK
}

func cmdRun(args []string, _, stderr io.Writer) int {
	fs, pathp := newFlags("run", stderr)
	if !parseFlags("run", fs, pathp, args, stderr) {
		return exitUsage
	}
	path := *pathp
	pol, ok := load(path, stderr)
	if !ok {
		return exitConfig
	}
	log := controller.NewLogger(pol.Log, stderr)
	log.Info("starting", "version", version, "config", path, "files", len(pol.Files))
	d, err := newRunner(pol, log, controller.Options{Version: version, ConfigPath: path})
	if err != nil {
		log.Error("cannot build daemon", "error", err.Error())
		return exitFailure
	}
	// Signals only tell the daemon to stop; the components' run loops do
	// not hang on their context, so that they stop in order below.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := d.Start(context.Background()); err != nil {
		log.Error("cannot start", "error", err.Error())
		return exitFailure
	}
	code := exitOK
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP: reloading the configuration")
				_ = d.Reload(path)
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "timeout", d.Policy().Daemon.ShutdownTimeout.String())
			break wait
		case err := <-d.Fatal():
			log.Error("a component failed and cannot be restarted: shutting down", "error", err.Error())
			code = exitFailure
			break wait
		}
	}
	signal.Stop(sigs) // a second signal kills the process at once
	ctx, cancel := context.WithTimeout(context.Background(), d.Policy().Daemon.ShutdownTimeout)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		log.Error("stop", "error", err.Error())
		return exitFailure
	}
	log.Info("stopped")
	return code
}

// runner is a running Floodgate: a single node (controller.Daemon), or a
// node of a cluster (cluster.Node) when the configuration has a kafka
// block.
type runner interface {
	Start(ctx context.Context) error
	Fatal() <-chan error
	Reload(path string) error
	Policy() *policies.Policy
	Shutdown(ctx context.Context) error
}

func newRunner(pol *policies.Policy, log hclog.Logger, opts controller.Options) (runner, error) {
	if pol.Kafka.Enabled() {
		return cluster.NewNode(pol, log, opts)
	}
	return controller.NewDaemon(pol, log, opts)
}
