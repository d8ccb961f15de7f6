package policies

import (
	"strings"
	"testing"
	"time"
)

func TestResponsesAndDefaults(t *testing.T) {
	pol, err := parseOne(t, minimal+`
defaults {
  ewma = "3s"
  threshold "incoming" {
    pps = "10kpps"
    tcp_syn { pps = 5000 }
    group { bps = "10Gbps" }
    relative {
      factor    = 5
      floor_pps = "1kpps"
    }
  }
  max_rules = 7
  response "catch-all" {
    rtbh { communities = ["65000:9"] }
    duration = "30m"
    hold     = "2m"
  }
}
hostgroup "two-lines" { prefixes = ["192.0.2.0/24"] }
hostgroup "acme" {
  prefixes  = ["203.0.113.0/24"]
  whitelist = ["203.0.113.53/32"]
  threshold "incoming" { bps = "1Gbps" }
  response "ntp" {
    when = attack.protocol == "udp" && attack.top_src_port.port == 123 && attack.top_src_port.share > 0.9
    flowspec {
      action = "rate-limit"
      rate   = "100Mbps"
    }
    extend = false
    escalate {
      after = "5m"
      rtbh {}
    }
  }
  response "never" {
    when = attack.hostgroup == "acme"
  }
}
`)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	two, acme := pol.Hostgroups[0], pol.Hostgroups[1]
	if two.EWMA != 3*time.Second || two.MaxRules != 7 || two.Incoming.Total.PPS != 10000 || two.Incoming.TCPSYN.PPS != 5000 ||
		two.Incoming.Group.BPS != 10e9 || two.Incoming.Relative != (Relative{Factor: 5, FloorPPS: 1000}) {
		t.Errorf("defaults not inherited: %+v", two)
	}
	if len(two.Responses) != 1 || two.Responses[0].Name != "catch-all" || two.Responses[0].RTBH.Communities[0] != 0xfde80009 ||
		two.Responses[0].Duration != 30*time.Minute || two.Responses[0].Hold != 2*time.Minute || !two.Responses[0].Extend {
		t.Errorf("default response: %+v", two.Responses)
	}
	// A hostgroup's threshold block replaces the default direction whole.
	if acme.Incoming.Total.PPS != 0 || acme.Incoming.Total.BPS != 1e9 || acme.Incoming.TCPSYN.PPS != 0 {
		t.Errorf("acme threshold %+v", acme.Incoming)
	}
	var names []string
	for _, r := range acme.Responses {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "ntp,never,catch-all" {
		t.Errorf("acme responses %v, want own first then defaults", names)
	}
	ntp := acme.Responses[0]
	if ntp.FlowSpec.Action != "rate-limit" || ntp.FlowSpec.RateBPS != 100e6 || ntp.FlowSpec.Coverage != DefaultCoverage || ntp.Extend ||
		ntp.Escalate.After != 5*time.Minute || ntp.Escalate.RTBH == nil || ntp.Mitigates() != true || acme.Responses[1].Mitigates() {
		t.Errorf("ntp response %+v", ntp)
	}
	if !strings.Contains(ntp.When.Source, "attack.top_src_port.port == 123") {
		t.Errorf("condition source %q", ntp.When.Source)
	}
	match := Attack{Protocol: "udp", Hostgroup: "acme", TopSrcPort: PortShare{Port: 123, Share: 0.95}}
	if ok, err := ntp.When.Match(match); !ok || err != nil {
		t.Errorf("Match(ntp attack) = %v, %v", ok, err)
	}
	match.TopSrcPort.Share = 0.5
	if ok, _ := ntp.When.Match(match); ok {
		t.Error("Match(mixed attack) = true")
	}
	if ok, _ := acme.Responses[1].When.Match(match); !ok {
		t.Error("never-response did not match")
	}
}

func TestResponseErrors(t *testing.T) {
	group := func(body string) string {
		return minimal + "hostgroup \"a\" {\n  prefixes = [\"192.0.2.0/24\"]\n" + body + "}\n"
	}
	tests := []struct {
		name, src, want string
	}{
		{"unknown field", group("  response \"r\" {\n    when = attack.protocl == \"udp\"\n  }\n"),
			`test.hcl:9:18: Unsupported attribute: This object does not have an attribute named "protocl". Attack fields: victim`},
		{"unknown variable", group("  response \"r\" {\n    when = atack.protocol == \"udp\"\n  }\n"),
			`test.hcl:9:12: Unknown variable in when: "atack" is not defined`},
		{"not a bool", group("  response \"r\" {\n    when = attack.pps\n  }\n"),
			`test.hcl:9:12: Condition is not true or false`},
		{"unknown action", group("  response \"r\" {\n    flowspec { action = \"drop\" }\n  }\n"),
			`test.hcl:9:25: Unknown FlowSpec action: "drop" is not an action`},
		{"rate limit needs rate", group("  response \"r\" {\n    flowspec { action = \"rate-limit\" }\n  }\n"),
			`test.hcl:9:5: Missing rate: action "rate-limit" needs rate`},
		{"rate without rate limit", group("  response \"r\" {\n    flowspec {\n      rate = \"1Mbps\"\n    }\n  }\n"),
			`test.hcl:10:14: Unused rate`},
		{"bad route target", group("  response \"r\" {\n    flowspec {\n      action = \"redirect\"\n      redirect = \"x\"\n    }\n  }\n"),
			`test.hcl:11:18: Invalid route target`},
		{"too broad", group("  response \"r\" {\n    rtbh { prefix_length_ipv4 = 16 }\n  }\n"),
			`Response too broad: response "r" blackholes /16, broader than 192.0.2.0/24 of hostgroup "a"`},
		{"empty escalation", group("  response \"r\" {\n    rtbh {}\n    escalate { after = \"1m\" }\n  }\n"),
			`test.hcl:10:5: Empty escalation`},
		{"bad coverage", group("  response \"r\" {\n    flowspec { coverage = 2 }\n  }\n"),
			`test.hcl:9:27: Invalid coverage`},
		{"empty limits", group("  threshold \"incoming\" {\n    udp {}\n  }\n"),
			`test.hcl:9:5: Empty limits`},
		{"only a udp limit is fine, an empty block is not", group("  threshold \"incoming\" {\n    udp { pps = 1 }\n    tcp {}\n  }\n"),
			`test.hcl:10:5: Empty limits`},
		{"relative without factor", group("  threshold \"incoming\" {\n    relative { floor_pps = 1 }\n  }\n"),
			`test.hcl:9:5: Missing factor`},
		{"duplicate response", group("  response \"r\" {\n  }\n  response \"r\" {\n  }\n"),
			`test.hcl:10:3: Duplicate response`},
		{"unknown announce kind", "bgp {\n  asn = 1\n  router_id = \"192.0.2.1\"\n  neighbor \"n\" {\n    address = \"192.0.2.2\"\n    asn = 2\n    announce = [\"blackhole\"]\n  }\n}\n",
			`test.hcl:7:17: Unknown announcement kind`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOne(t, tc.src)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, tc.want)
			}
		})
	}
}
