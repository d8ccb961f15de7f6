package policies

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Defaults.
const (
	// DefaultTick, DefaultEWMA and the burst path settle detection's
	// trade-off. A burst of legitimate traffic at 2× its limit for 1 s on
	// top of the host's usual 0.15× peaks at 0.15 + 2·(1−e^(−1/2)) = 0.94
	// of the limit on the sustained EWMA (2 s) and at 2.15 < 2.5× on the
	// burst EWMA (200 ms): no attack. A flood at 5× passes 2.5× on the
	// burst EWMA within one or two ticks; one at 1.5× passes the limit on
	// the sustained EWMA after 2·ln(1.35/0.5) = 2 s.
	DefaultTick = 200 * time.Millisecond
	MinTick     = 100 * time.Millisecond
	DefaultEWMA = 2 * time.Second
	// DefaultBurstFactor and DefaultBurstEWMA are the fast path.
	DefaultBurstFactor = 2.5
	DefaultBurstEWMA   = 200 * time.Millisecond
	// DefaultWindow is the confidence window (Detection.Window).
	DefaultWindow   = 3 * time.Second
	DefaultBaseline = 15 * time.Minute
	// DefaultConfidence is the detection confidence: one-sided 99.9 %,
	// z = 3.09.
	DefaultConfidence = 0.9999
	DefaultDuration   = 10 * time.Minute
	DefaultMaxRules   = 100
	DefaultMaxActive  = 10000
	// DefaultMaxFlowSpec is a neighbour's max_flowspec_rules.
	DefaultMaxFlowSpec = 1000
	// DefaultRulesPerAttack is a flowspec block's max_rules_per_attack.
	DefaultRulesPerAttack = 4
	// DefaultAggregateAfter, DefaultAggregatePrefix4 and
	// DefaultAggregatePrefix6 are the aggregation defaults.
	DefaultAggregateAfter   = 4
	DefaultAggregatePrefix4 = 24
	DefaultAggregatePrefix6 = 64
	DefaultCoverage         = 0.95
	DefaultStateFile        = "floodgate.db"
	DefaultBGPPort          = 179
	DefaultAPISocket        = "/run/floodgate/api.sock"
)

// Error is a list of configuration errors, each with its position.
type Error struct {
	Diags hcl.Diagnostics
}

// Error formats every error as file:line:col: message, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(FormatDiagnostic(d))
	}
	return b.String()
}

// FormatDiagnostic renders d as "file:line:col: summary: detail".
func FormatDiagnostic(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Load reads path, a file or a directory whose *.hcl files are merged in
// name order, and returns the compiled policy. Any error, in any file,
// fails the whole load; the returned error is an *Error listing them all
// unless the path itself cannot be read.
func Load(path string) (*Policy, error) {
	files, err := configFiles(path)
	if err != nil {
		return nil, err
	}
	srcs := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		srcs[f] = b
	}
	return Parse(files, srcs)
}

func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("config: no *.hcl files in %s", path)
	}
	sort.Strings(files)
	return files, nil
}

// Parse compiles the given files, named in order, from their contents.
func Parse(names []string, srcs map[string][]byte) (*Policy, error) {
	p := hclparse.NewParser()
	c := &compiler{pol: &Policy{Files: names}, srcs: srcs}
	var parsed []parsedFile
	for _, name := range names {
		f, diags := p.ParseHCL(srcs[name], name)
		c.diags = append(c.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		// A schema error (an unknown name, a wrong type) leaves the rest
		// of the file decoded: compile it anyway so that one run reports
		// every error.
		var fs fileSchema
		diags = gohcl.DecodeBody(f.Body, nil, &fs)
		c.diags = append(c.diags, diags...)
		parsed = append(parsed, parsedFile{name: name, schema: &fs})
	}
	c.compile(parsed)
	if c.diags.HasErrors() {
		return nil, &Error{Diags: onlyErrors(c.diags)}
	}
	return c.pol, nil
}

func onlyErrors(ds hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		if d.Severity == hcl.DiagError {
			out = append(out, d)
		}
	}
	return out
}

type parsedFile struct {
	name   string
	schema *fileSchema
}

type compiler struct {
	pol   *Policy
	srcs  map[string][]byte
	diags hcl.Diagnostics
}

func (c *compiler) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}
