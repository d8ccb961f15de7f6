package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
)

// cmdReplay runs a capture through detection and the policy offline and
// prints the attacks found and the announcements that would have been
// made. No BGP session is opened.
func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("replay", stderr)
	sampling := fs.Uint("sampling", 1, "the capture holds 1 packet in N")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if *path == "" || len(positional) != 1 {
		fmt.Fprintln(stderr, "floodgate replay: need --config PATH and one CAPTURE file (pcap or pcapng)")
		return exitUsage
	}
	pol, ok := load(*path, stderr)
	if !ok {
		return exitConfig
	}
	logger := controller.NewLogger(pol.Log, io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := controller.ReplayOptions{Sampling: uint32(*sampling)}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts.Progress = func(st pcapfile.Stats, size int64) { progressBar(stderr, positional[0], st, size) }
	}
	start := time.Now()
	res, err := controller.Replay(ctx, pol, positional[0], opts, logger)
	if opts.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "floodgate replay: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if err := printJSON(stdout, res); err != nil {
			return exitFailure
		}
		return exitOK
	}
	printReplay(stdout, res, time.Since(start))
	return exitOK
}

// progressBar draws a one-line bar. The file's size is compared with the
// bytes read plus the per-packet record headers: exact for captures taken
// with a full snap length, an estimate otherwise.
func progressBar(w io.Writer, name string, st pcapfile.Stats, size int64) {
	frac := 0.0
	if size > 0 {
		frac = min(0.999, float64(st.Bytes+16*st.Packets+24)/float64(size))
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(w, "\r%s [%s%s] %3.0f%% %d packets", name, strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, st.Packets)
}

func printReplay(w io.Writer, res controller.ReplayResult, took time.Duration) {
	span := res.Last.Sub(res.First).Round(time.Millisecond)
	fmt.Fprintf(w, "%s: %d packets (%d IP, %d skipped) covering %s, replayed in %s\n\n",
		res.File, res.Stats.Packets, res.Stats.Records, res.Stats.Skipped, span, took.Round(time.Millisecond))
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return "+" + t.Sub(res.First).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "attacks found: %d\n", len(res.Attacks))
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	if len(res.Attacks) > 0 {
		fmt.Fprintln(tw, "  ID\tVICTIM\tDIRECTION\tHOSTGROUP\tSTARTED\tENDED\tPEAK PPS\tPROTOCOL\tTOP SRC PORT\tREASON")
	}
	for _, a := range res.Attacks {
		s := a.Signature
		port := "-"
		if p := detect.Top(s.SrcPorts); p.Share > 0 {
			port = fmt.Sprintf("%d (%.0f%%)", p.Value, p.Share*100)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Victim, s.Direction, s.Hostgroup, at(s.Started), at(a.Ended),
			human(s.PeakPPS), s.Dominant(), port, s.Reason)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nannouncements that would have been made: %d\n", len(res.Actions))
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	for _, a := range res.Actions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", at(a.At), a.Action, a.Announcement.String(), a.Response)
	}
	tw.Flush()
}
