// Command floodgate-gen is the project's traffic generator: it plays a
// scenario of background traffic and, from a given moment, an attack, as
// sFlow v5, NetFlow v5, NetFlow v9 or IPFIX exports to a loopback collector,
// or as raw Ethernet frames onto a veth, at a controlled rate, and prints
// the wall-clock time when the first attack datagram or frame is sent.
//
// Flow exports go only to 127.0.0.0/8 or ::1; raw frames only onto a veth
// in a network namespace other than the host's. See package
// integration/gen for the traffic model.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/gen"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: floodgate-gen [flags]

Plays background traffic and, from --start, an attack, for --duration, and
prints "attack TYPE starts at TIME" when the first attack datagram or frame
is sent, then a summary.

  --format sflow|netflow5|netflow9|ipfix|raw   output (default netflow9)
  --to ADDR:PORT        collector, loopback only (default 127.0.0.1:2055,
                        127.0.0.1:6343 for sflow)
  --interface NAME      raw: the veth to write frames to (not in the host's
                        namespace: run under "ip netns exec NS" or give --netns)
  --netns NAME          raw: the namespace (under /run/netns) holding --interface
  --attack TYPE         ntp, dns, memcached, ssdp, cldap, syn, ack, udp-random,
                        icmp, fragment, carpet or none (default ntp)
  --victim ADDR         attacked address, IPv4 or IPv6 (default 203.0.113.10);
                        for carpet, its /24 (IPv6: /64) is attacked
  --attack-pps N        attack rate, packets per second (default 100000)
  --background-hosts P  prefix of the hosts with normal traffic (default 198.51.100.0/24)
  --background-count N  how many of its hosts (default 200)
  --background-pps N    normal traffic, packets per second over all hosts (default 10000)
  --victim-pps N        the victim's own traffic, packets per second (default 0):
                        web clients, SYNs, DNS and NTP answers, echo replies
  --start D             when the attack starts (default 2s)
  --duration D          how long the run lasts, at most 1h (default 10s)
  --sampling N          1-in-N packet sampling of flow exports (default 1)
  --seed N              seed of the traffic (default 1)
  --interval D          pacing and model interval, 10ms to 1s (default 100ms)
  --sources N           reflectors, or spoofed sources per interval (default 2000)
  --carpet TYPE         reflection used by --attack carpet (default ntp)
  --max-packets N       raw: most frames sent (default 50000000)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	format     string
	to         string
	iface      string
	netns      string
	sampling   uint32
	maxPackets uint64
	scenario   gen.Scenario
}

// errUsage marks command-line errors.
var errUsage = errors.New("usage")

// parse parses the command line.
func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{scenario: gen.Scenario{Seed: 1}}
	fs := flag.NewFlagSet("floodgate-gen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	s := &o.scenario
	var attack, carpet, victim, hosts string
	fs.StringVar(&o.format, "format", "netflow9", "")
	fs.StringVar(&o.to, "to", "", "")
	fs.StringVar(&o.iface, "interface", "", "")
	fs.StringVar(&o.netns, "netns", "", "")
	fs.StringVar(&attack, "attack", "ntp", "")
	fs.StringVar(&victim, "victim", "203.0.113.10", "")
	fs.StringVar(&hosts, "background-hosts", "198.51.100.0/24", "")
	fs.StringVar(&carpet, "carpet", "ntp", "")
	fs.DurationVar(&s.Start, "start", 2*time.Second, "")
	fs.DurationVar(&s.Duration, "duration", 10*time.Second, "")
	fs.DurationVar(&s.Interval, "interval", gen.DefaultInterval, "")
	uintFlag(fs, "attack-pps", 64, 100_000, func(v uint64) { s.AttackPPS = v })
	uintFlag(fs, "background-pps", 64, 10_000, func(v uint64) { s.BackgroundPPS = v })
	uintFlag(fs, "victim-pps", 64, 0, func(v uint64) { s.VictimPPS = v })
	uintFlag(fs, "background-count", 31, 200, func(v uint64) { s.BackgroundCount = int(v) })
	uintFlag(fs, "sampling", 32, 1, func(v uint64) { o.sampling = uint32(v) })
	uintFlag(fs, "seed", 64, 1, func(v uint64) { s.Seed = v })
	uintFlag(fs, "sources", 31, gen.DefaultSources, func(v uint64) { s.Sources = int(v) })
	uintFlag(fs, "max-packets", 64, gen.DefaultRawMaxPackets, func(v uint64) { o.maxPackets = v })
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var err error
	if s.Attack, err = gen.ParseAttack(attack); err != nil {
		return nil, fmt.Errorf("%w: --attack: %w", errUsage, err)
	}
	if s.Carpet, err = gen.ParseAttack(carpet); err != nil {
		return nil, fmt.Errorf("%w: --carpet: %w", errUsage, err)
	}
	if s.Victim, err = netip.ParseAddr(victim); err != nil {
		return nil, fmt.Errorf("%w: --victim: %w", errUsage, err)
	}
	if s.BackgroundHosts, err = netip.ParsePrefix(hosts); err != nil {
		return nil, fmt.Errorf("%w: --background-hosts: %w", errUsage, err)
	}
	if s.BackgroundPPS == 0 {
		s.BackgroundCount = 0
	}
	return o, nil
}

// uintFlag defines an unsigned flag of the given bit size.
func uintFlag(fs *flag.FlagSet, name string, bitSize int, def uint64, set func(uint64)) {
	set(def)
	fs.Func(name, "", func(v string) error {
		n, err := strconv.ParseUint(v, 10, bitSize)
		if err != nil {
			return fmt.Errorf("not a number of %d bits: %w", bitSize, err)
		}
		set(n)
		return nil
	})
}

// emitter returns the emitter of the options.
func (o *options) emitter() (gen.Emitter, error) {
	if o.format == "raw" {
		if o.iface == "" {
			return nil, fmt.Errorf("%w: --format raw needs --interface", errUsage)
		}
		if o.to != "" {
			return nil, fmt.Errorf("%w: --to is for flow exports; raw frames go to --interface", errUsage)
		}
		return &gen.RawEmitter{Interface: o.iface, Netns: o.netns, MaxPackets: o.maxPackets}, nil
	}
	if o.iface != "" || o.netns != "" {
		return nil, fmt.Errorf("%w: --interface and --netns are for --format raw", errUsage)
	}
	to := o.to
	if to == "" {
		to = "127.0.0.1:2055"
		if o.format == "sflow" {
			to = "127.0.0.1:6343"
		}
	}
	ap, err := netip.ParseAddrPort(to)
	if err != nil {
		return nil, fmt.Errorf("%w: --to %q: write a loopback address and port, such as 127.0.0.1:2055 or [::1]:6343: %w", errUsage, to, err)
	}
	if err := gen.CheckLoopback(ap); err != nil {
		return nil, fmt.Errorf("%w: --to: %w", errUsage, err)
	}
	switch o.format {
	case "sflow":
		return &gen.SFlowEmitter{To: ap, SamplingRate: o.sampling}, nil
	case "netflow5":
		return &gen.NetFlowEmitter{Version: 5, To: ap, SamplingRate: o.sampling}, nil
	case "netflow9":
		return &gen.NetFlowEmitter{Version: 9, To: ap, SamplingRate: o.sampling}, nil
	case "ipfix":
		return &gen.NetFlowEmitter{Version: 10, To: ap, SamplingRate: o.sampling}, nil
	}
	return nil, fmt.Errorf("%w: --format %q: write sflow, netflow5, netflow9, ipfix or raw", errUsage, o.format)
}

// realMain runs the generator and returns the exit code.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var e gen.Emitter
	if err == nil {
		e, err = o.emitter()
	}
	if err == nil {
		_, err = gen.NewModel(o.scenario) // validate before saying anything
	}
	if err != nil {
		fmt.Fprintf(stderr, "floodgate-gen: %v\n", strings.TrimPrefix(err.Error(), "usage: "))
		if errors.Is(err, errUsage) || errors.Is(err, gen.ErrInvalidScenario) {
			fmt.Fprint(stderr, "run floodgate-gen --help for the flags\n")
			return exitUsage
		}
		return exitFailure
	}
	s := o.scenario
	fmt.Fprintf(stderr, "floodgate-gen: %s; %s; %v\n", e, describe(&s), s.Duration)
	res, err := gen.Run(ctx, s, stdout, e)
	if res.Intervals > 0 {
		summary(stdout, &s, &res)
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "floodgate-gen: interrupted")
		return exitFailure
	case errors.Is(err, gen.ErrInvalidScenario):
		fmt.Fprintf(stderr, "floodgate-gen: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "floodgate-gen: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// describe says what the scenario plays.
func describe(s *gen.Scenario) string {
	var b strings.Builder
	if s.Attack != gen.AttackNone {
		fmt.Fprintf(&b, "attack %s at %d pps on %v from %v", s.Attack, s.AttackPPS, s.Victim, s.Start)
	} else {
		b.WriteString("no attack")
	}
	if s.BackgroundPPS > 0 {
		fmt.Fprintf(&b, "; background %d pps over %d hosts of %v", s.BackgroundPPS, s.BackgroundCount, s.BackgroundHosts)
	}
	return b.String()
}

// summary prints what was sent.
func summary(w io.Writer, s *gen.Scenario, res *gen.Result) {
	t := &res.Total
	secs := res.Elapsed.Seconds()
	fmt.Fprintf(w, "sent %d datagrams/frames, %d records in %.3fs (%.0f records/s)\n",
		t.Datagrams, t.Records, secs, float64(t.Records)/secs)
	fmt.Fprintf(w, "traffic described: %d packets, %d octets; attack %d packets (model: %d attack, %d background)\n",
		t.Packets, t.Bytes, t.AttackPackets, res.AttackPackets, res.BackgroundPackets)
	if !res.AttackStart.IsZero() {
		span := res.Started.Add(res.Elapsed).Sub(res.AttackStart).Seconds()
		fmt.Fprintf(w, "attack %s: %.0f pps achieved from %s\n", s.Attack, float64(t.AttackPackets)/span,
			res.AttackStart.UTC().Format(gen.StartTimeLayout))
	}
	if t.Late > 0 || t.Capped > 0 {
		fmt.Fprintf(w, "not sent: %d late (could not keep up with the rate asked), %d over --max-packets\n", t.Late, t.Capped)
	}
}
