package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
)

// clientFlags are the flags every API command takes.
type clientFlags struct {
	socket, api, token, config string
	json                       bool
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.socket, "socket", envOr("FLOODGATE_SOCKET", policies.DefaultAPISocket), "the daemon's unix socket (env FLOODGATE_SOCKET)")
	fs.StringVar(&f.api, "api", os.Getenv("FLOODGATE_API"), "the daemon's TCP API URL, such as http://127.0.0.1:8080 (env FLOODGATE_API)")
	fs.StringVar(&f.token, "token", os.Getenv("FLOODGATE_TOKEN"), "bearer token for the TCP API (env FLOODGATE_TOKEN)")
	fs.StringVar(&f.config, "config", "", "read the socket path from this configuration")
	fs.BoolVar(&f.json, "json", false, "print the API's JSON")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f *clientFlags) client() (*controller.Client, error) {
	if f.api != "" {
		return controller.NewClient(f.api, f.token), nil
	}
	socket := f.socket
	if f.config != "" {
		pol, err := policies.Load(f.config)
		if err != nil {
			return nil, err
		}
		socket = pol.API.Socket
	}
	return controller.NewClient(socket, ""), nil
}

// apiCommand parses flags and runs fn with a client; it maps errors to
// exit codes and messages.
func apiCommand(name string, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet), fn func(context.Context, *controller.Client, *flag.FlagSet, bool) error) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	_ = fs.Parse(append([]string{"--"}, positional...)) // leave only the positional arguments in fs.Args
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "floodgate %s: %v\n", name, err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := fn(ctx, c, fs, cf.json); err != nil {
		if errors.Is(err, controller.ErrNotRunning) {
			fmt.Fprintf(stderr, "floodgate %s: %v; start it with `floodgate run --config PATH`, or point --socket/--api at it\n", name, err)
			return exitNotRunning
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "floodgate %s: %v\n", name, err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "floodgate %s: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}

// parseInterspersed parses flags that may come after positional
// arguments ("ban 203.0.113.7 --duration 1h") and returns the positional
// ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func until(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return "due"
	}
	return "in " + d.String()
}

func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	return apiCommand("status", args, stdout, stderr, nil, func(ctx context.Context, c *controller.Client, _ *flag.FlagSet, asJSON bool) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, st)
		}
		dry := "no"
		if st.DryRun {
			dry = "yes (nothing is announced)"
		}
		fmt.Fprintf(stdout, "floodgate %s (gobgp %s), up %s, config %s, dry run: %s\n\n", st.Version, st.GoBGP, st.Uptime, st.Config, dry)
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "COMPONENT\tSTATE\tSINCE\tON FAILURE\tFAILURES\tRESTARTS\tLAST ERROR")
		for _, c := range st.Components {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", c.Name, c.State, c.Since.Format(time.RFC3339), c.OnFailure, c.Failures, c.Restarts, c.LastError)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tPROTOCOL\tLISTEN\tDATAGRAMS\tRECORDS\tMALFORMED\tUNKNOWN TEMPLATE\tQUEUE DROPS")
		for _, s := range st.Sources {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.Name, s.Protocol, s.Addr, s.Datagrams, s.Records, s.Malformed, s.UnknownTemplate, s.QueueDrops)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "NEIGHBOR\tADDRESS\tASN\tSTATE\tGRACEFUL RESTART\tADVERTISED")
		if len(st.Neighbors) == 0 {
			fmt.Fprintln(tw, "(none configured)\t\t\t\t\t")
		}
		for _, n := range st.Neighbors {
			var adv []string
			for fam, k := range n.Advertised {
				adv = append(adv, fmt.Sprintf("%s=%d", fam, k))
			}
			gr := "off"
			switch g := n.GracefulRestart; {
			case g == nil:
			case !n.Established:
				gr = "-"
			default:
				gr = "on"
				if g.PeerRestartTime > 0 {
					gr += fmt.Sprintf(" (peer's %ds)", g.PeerRestartTime)
				}
				if g.Syncing {
					gr += ", syncing"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, n.Address, n.ASN, n.State, gr, strings.Join(adv, " "))
		}
		tw.Flush()
		d, m := st.Detection, st.Mitigation
		fmt.Fprintf(stdout, "\ndetection: %d records, %d hosts tracked, %d attacks, last tick %s\n", d.Records, d.Hosts, d.Attacks, d.LastTick)
		refused := uint64(0)
		for _, n := range m.Refused {
			refused += n
		}
		fmt.Fprintf(stdout, "mitigation: %d active, %d announced, %d withdrawn, %d refused, %d failures\n\n", m.Active, m.Announced, m.Withdrawn, refused, m.Failures)
		tw = tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "HOSTGROUP\tATTACKS\tMITIGATIONS")
		for _, h := range st.Hostgroups {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", h.Name, h.Attacks, h.Mitigations)
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "BUDGET\tSCOPE\tUSED\tLIMIT")
		for _, b := range st.Budgets {
			scope := b.Scope
			scope = cmp.Or(scope, "-")
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", b.Budget, scope, b.Used, b.Limit)
		}
		return tw.Flush()
	})
}

func attackRow(tw io.Writer, a controller.AttackInfo) {
	s := a.Signature
	port := "-"
	if p := detect.Top(s.SrcPorts); p.Share > 0 {
		port = fmt.Sprintf("%d (%.0f%%)", p.Value, p.Share*100)
	}
	ended := "-"
	if !a.Ended.IsZero() {
		ended = ago(a.Ended)
	}
	fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Victim, s.Direction, s.Hostgroup, ago(s.Started), ended,
		human(s.PeakPPS), s.Dominant(), port, s.Reason)
}

func cmdAttacks(args []string, stdout, stderr io.Writer) int {
	return apiCommand("attacks", args, stdout, stderr, nil, func(ctx context.Context, c *controller.Client, _ *flag.FlagSet, asJSON bool) error {
		a, err := c.Attacks(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, a)
		}
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVICTIM\tDIRECTION\tHOSTGROUP\tSTARTED\tENDED\tPEAK PPS\tPROTOCOL\tTOP SRC PORT\tREASON")
		for _, x := range a.Active {
			attackRow(tw, x)
		}
		for _, x := range a.Recent {
			attackRow(tw, x)
		}
		if len(a.Active)+len(a.Recent) == 0 {
			fmt.Fprintln(tw, "(no attacks)")
		}
		return tw.Flush()
	})
}

func cmdMitigations(args []string, stdout, stderr io.Writer) int {
	return apiCommand("mitigations", args, stdout, stderr, nil, func(ctx context.Context, c *controller.Client, _ *flag.FlagSet, asJSON bool) error {
		m, err := c.Mitigations(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, m)
		}
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "ANNOUNCEMENT\tHOSTGROUP\tRESPONSE\tATTACK\tRULE\tPEERS\tSTARTED\tEXPIRES\tREASON")
		for _, x := range m.Mitigations {
			what := x.Announcement.String()
			if x.DryRun {
				what += " (dry run)"
			}
			peers := strings.Join(x.Peers, ",")
			peers = cmp.Or(peers, "-")
			attack, rule := "-", "-"
			if x.AttackID != 0 {
				attack = strconv.FormatUint(x.AttackID, 10)
				if len(x.Merged) > 0 {
					attack += fmt.Sprintf(" +%d", len(x.Merged))
				}
			}
			if x.Rules > 0 {
				rule = fmt.Sprintf("%d/%d", x.Rule, x.Rules)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", what, x.Hostgroup, x.Response, attack, rule, peers,
				ago(x.Started), until(x.Expires), x.Reason)
		}
		if len(m.Mitigations) == 0 {
			fmt.Fprintln(tw, "(no active mitigations)")
		}
		return tw.Flush()
	})
}

func cmdBan(args []string, stdout, stderr io.Writer) int {
	var req controller.BanRequest
	var communities string
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&req.Duration, "duration", "10m", "how long")
		fs.StringVar(&req.Reason, "reason", "", "why, kept with the mitigation")
		fs.StringVar(&req.Rule, "flowspec", "", "a FlowSpec rule instead of a blackhole, such as 'dst 203.0.113.10/32 proto udp sport 123'")
		fs.StringVar(&req.Action, "action", "discard", "FlowSpec action: discard, rate-limit, redirect, mark")
		fs.StringVar(&req.Rate, "rate", "", "rate-limit in bits/s, such as 10Mbps")
		fs.StringVar(&req.Redirect, "redirect", "", "redirect route target, such as 65000:100")
		fs.IntVar(&req.DSCP, "dscp", 0, "mark: DSCP value")
		fs.StringVar(&communities, "community", "", "extra RTBH communities, comma-separated")
	}
	return apiCommand("ban", args, stdout, stderr, extra, func(ctx context.Context, c *controller.Client, fs *flag.FlagSet, asJSON bool) error {
		switch {
		case req.Rule != "" && fs.NArg() == 0:
			req.Kind = policies.KindFlowSpec
		case req.Rule == "" && fs.NArg() == 1:
			req.Kind, req.Prefix = policies.KindRTBH, fs.Arg(0)
		default:
			return usageError{"give one ADDRESS or PREFIX to blackhole, or --flowspec RULE"}
		}
		if communities != "" {
			req.Communities = strings.Split(communities, ",")
		}
		mt, err := c.Ban(ctx, req)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, mt)
		}
		fmt.Fprintf(stdout, "announced %s until %s\n", mt.Announcement.String(), mt.Expires.Format(time.RFC3339))
		return nil
	})
}

func cmdUnban(args []string, stdout, stderr io.Writer) int {
	var key string
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&key, "key", "", "the mitigation's key (from `floodgate mitigations --json`)")
	}
	return apiCommand("unban", args, stdout, stderr, extra, func(ctx context.Context, c *controller.Client, fs *flag.FlagSet, asJSON bool) error {
		if (key == "") == (fs.NArg() == 0) || fs.NArg() > 1 {
			return usageError{"give one ADDRESS or PREFIX, or --key KEY"}
		}
		keys, err := c.Unban(ctx, key, fs.Arg(0))
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, map[string][]string{"withdrawn": keys})
		}
		for _, k := range keys {
			fmt.Fprintf(stdout, "withdrawn %s\n", k)
		}
		return nil
	})
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	return apiCommand("reload", args, stdout, stderr, nil, func(ctx context.Context, c *controller.Client, _ *flag.FlagSet, _ bool) error {
		if err := c.Reload(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "configuration reloaded")
		return nil
	})
}
