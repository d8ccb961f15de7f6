package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/floodgate-ddos/floodgate/controller"
)

// Terminal control sequences.
const (
	clearScreen = "\x1b[H\x1b[2J"
	reverse     = "\x1b[1;7;31m"
	bold        = "\x1b[1m"
	reset       = "\x1b[0m"
	hideCursor  = "\x1b[?25l"
	showCursor  = "\x1b[?25h"
)

// cmdTop is a live view of the busiest hosts, refreshed every interval,
// attacked hosts highlighted. Keys: q quits, p/b/f sort by pps, bps or
// flows, i/o show incoming or outgoing traffic.
func cmdTop(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	by := fs.String("by", "pps", "sort by pps, bps or flows")
	dir := fs.String("direction", "incoming", "incoming or outgoing")
	n := fs.Int("n", 0, "hosts shown (default: what fits the terminal)")
	interval := fs.Duration("interval", time.Second, "refresh interval")
	once := fs.Bool("once", false, "print one screen and exit")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "floodgate top: %v\n", err)
		return exitConfig
	}
	fd := int(stdin.Fd())
	interactive := !*once && term.IsTerminal(fd)
	rows := *n
	if rows == 0 {
		rows = 20
		if _, h, err := term.GetSize(fd); err == nil && h > 8 {
			rows = h - 5
		}
	}
	nl := "\n"
	keys := make(chan byte, 8)
	if interactive {
		old, err := term.MakeRaw(fd)
		if err != nil {
			fmt.Fprintf(stderr, "floodgate top: %v\n", err)
			return exitFailure
		}
		defer term.Restore(fd, old)
		fmt.Fprint(stdout, hideCursor)
		defer fmt.Fprint(stdout, showCursor)
		nl = "\r\n"
		go func() { // ends with the process; reads nothing else
			b := make([]byte, 1)
			for {
				if _, err := stdin.Read(b); err != nil {
					close(keys)
					return
				}
				keys <- b[0]
			}
		}()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		frame, err := topFrame(ctx, c, *by, *dir, rows, interactive, nl)
		cancel()
		if err != nil {
			if interactive {
				term.Restore(fd, nil)
			}
			if errors.Is(err, controller.ErrNotRunning) {
				fmt.Fprintf(stderr, "floodgate top: %v\n", err)
				return exitNotRunning
			}
			fmt.Fprintf(stderr, "floodgate top: %v\n", err)
			return exitFailure
		}
		fmt.Fprint(stdout, frame)
		if !interactive {
			return exitOK
		}
		select {
		case k, ok := <-keys:
			if !ok {
				return exitOK
			}
			switch k {
			case 'q', 'Q', 3: // 3: Ctrl-C in raw mode
				fmt.Fprint(stdout, clearScreen)
				return exitOK
			case 'p':
				*by = "pps"
			case 'b':
				*by = "bps"
			case 'f':
				*by = "flows"
			case 'i':
				*dir = "incoming"
			case 'o':
				*dir = "outgoing"
			}
		case <-stop:
			return exitOK
		case <-tick.C:
		}
	}
}

func topFrame(ctx context.Context, c *controller.Client, by, dir string, rows int, color bool, nl string) (string, error) {
	hosts, err := c.Hosts(ctx, by, dir, rows)
	if err != nil {
		return "", err
	}
	attacks, err := c.Attacks(ctx)
	if err != nil {
		return "", err
	}
	mits, err := c.Mitigations(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if color {
		b.WriteString(clearScreen)
	}
	fmt.Fprintf(&b, "floodgate top - %s hosts by %s - %d attacks, %d mitigations - %s%s",
		dir, by, len(attacks.Active), len(mits.Mitigations), time.Now().Format("15:04:05"), nl)
	b.WriteString("keys: q quit  p/b/f sort by pps/bps/flows  i/o incoming/outgoing" + nl + nl)
	head := fmt.Sprintf("%-40s %-16s %10s %10s %10s %10s  %s", "HOST", "HOSTGROUP", "PPS", "BPS", "FLOWS/S", "BASE PPS", "STATE")
	if color {
		head = bold + head + reset
	}
	b.WriteString(head + nl)
	for _, h := range hosts.Hosts {
		state := ""
		if h.Attack {
			state = "ATTACK"
		}
		line := fmt.Sprintf("%-40s %-16s %10s %10s %10s %10s  %s", h.Addr, h.Hostgroup, human(h.PPS), human(h.BPS), human(h.Flows), human(h.BasePPS), state)
		if h.Attack && color {
			line = reverse + line + reset
		}
		b.WriteString(line + nl)
	}
	if len(hosts.Hosts) == 0 {
		b.WriteString("(no traffic seen)" + nl)
	}
	return b.String(), nil
}
