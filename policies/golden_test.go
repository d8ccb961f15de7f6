package policies

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden loads each directory under testdata/golden as a whole
// configuration and compares the errors, or the explanation of a few
// addresses, with want.txt.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden directories: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var got strings.Builder
			pol, err := Load(dir)
			if err != nil {
				got.WriteString(err.Error() + "\n")
			} else {
				for _, a := range []string{"198.51.100.7", "198.51.100.53", "198.51.100.200", "203.0.113.1", "2001:db8:300::1", "192.0.2.99"} {
					got.WriteString(pol.Explain(netip.MustParseAddr(a)))
				}
			}
			want := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(want, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got.String() != string(b) {
				t.Errorf("got:\n%s\nwant:\n%s", got.String(), b)
			}
		})
	}
}
