package gen

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Attack names a type of attack.
type Attack string

// Attack types. The reflection attacks come from many reflectors (see
// Scenario.Sources) with the service's well-known source port; the floods
// come from spoofed sources, new ones every interval.
const (
	// AttackNone plays background traffic only.
	AttackNone Attack = ""
	// AttackNTP is NTP monlist reflection: UDP from port 123, 468 octets.
	AttackNTP Attack = "ntp"
	// AttackDNS is DNS reflection with large answers: UDP from port 53,
	// 3,200 octets of UDP datagram sent as three IP fragments (1500, 1500
	// and 260 octets in IPv4; 1280, 1280 and 784 in IPv6), the first with
	// the ports.
	AttackDNS Attack = "dns"
	// AttackMemcached is memcached reflection: UDP from port 11211, 1400
	// octets.
	AttackMemcached Attack = "memcached"
	// AttackSSDP is SSDP reflection: UDP from port 1900, 300 octets.
	AttackSSDP Attack = "ssdp"
	// AttackCLDAP is CLDAP reflection: UDP from port 389, 1400 octets.
	AttackCLDAP Attack = "cldap"
	// AttackSYN is a SYN flood: TCP with SYN only, random source ports,
	// destination port 80 or 443, 60 octets (80 in IPv6: options included).
	AttackSYN Attack = "syn"
	// AttackACK is an ACK flood: TCP with ACK only, random source ports,
	// destination port 80 or 443, 40 octets (60 in IPv6).
	AttackACK Attack = "ack"
	// AttackUDPRandom is a UDP flood to random destination ports from
	// random source ports, 540 octets (560 in IPv6).
	AttackUDPRandom Attack = "udp-random"
	// AttackICMP is an ICMP (ICMPv6) echo request flood, 84 octets (104 in
	// IPv6).
	AttackICMP Attack = "icmp"
	// AttackFragment is a flood of non-first UDP fragments, without ports,
	// 1480 octets.
	AttackFragment Attack = "fragment"
	// AttackCarpet is carpet bombing: a reflection attack (Scenario.Carpet)
	// spread evenly over every address of the victim's /24, or over
	// Scenario.CarpetHosts addresses of its /64 in IPv6, so that each
	// host gets AttackPPS divided by their number.
	AttackCarpet Attack = "carpet"
)

// Attacks lists every attack type, AttackNone excluded, in a stable order.
func Attacks() []Attack {
	return []Attack{
		AttackNTP, AttackDNS, AttackMemcached, AttackSSDP, AttackCLDAP,
		AttackSYN, AttackACK, AttackUDPRandom, AttackICMP, AttackFragment, AttackCarpet,
	}
}

// IsReflection reports whether a is a reflection attack (and so a valid
// Scenario.Carpet).
func (a Attack) IsReflection() bool {
	switch a {
	case AttackNTP, AttackDNS, AttackMemcached, AttackSSDP, AttackCLDAP:
		return true
	}
	return false
}

// ParseAttack returns the attack named s; "none" and "" are AttackNone.
func ParseAttack(s string) (Attack, error) {
	if s == "none" || s == "" {
		return AttackNone, nil
	}
	a := Attack(s)
	if !slices.Contains(Attacks(), a) {
		return "", fmt.Errorf("unknown attack %q: %w", s, ErrInvalidScenario)
	}
	return a, nil
}

// Bounds of a scenario. They keep every run, and the memory of a Model,
// bounded whatever the caller asks for.
const (
	// MaxDuration is the longest scenario.
	MaxDuration = time.Hour
	// MaxPPS bounds AttackPPS and BackgroundPPS.
	MaxPPS = 20_000_000
	// MaxBackgroundHosts bounds Scenario.BackgroundCount.
	MaxBackgroundHosts = 1 << 16
	// MaxSources bounds Scenario.Sources.
	MaxSources = 1 << 16
	// MaxCarpetHosts bounds Scenario.CarpetHosts.
	MaxCarpetHosts = 1 << 12
	// MinInterval and MaxInterval bound Scenario.Interval.
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Second
)

// Defaults of the zero fields of a Scenario.
const (
	DefaultInterval    = 100 * time.Millisecond
	DefaultSources     = 2000
	DefaultCarpet      = AttackNTP
	DefaultCarpetHosts = 256
)

// ErrInvalidScenario reports a Scenario field out of range; the error
// names the field.
var ErrInvalidScenario = errors.New("invalid scenario")

// Scenario describes the traffic to generate. The zero values of Interval,
// Sources, Carpet and CarpetHosts mean their defaults.
type Scenario struct {
	// Victim is the address attacked, IPv4 or IPv6. For AttackCarpet it
	// names the /24 (IPv6: /64) attacked.
	Victim netip.Addr
	// Attack is the type of attack; AttackNone plays background only.
	Attack Attack
	// AttackPPS is the attack's rate in packets per second, summed over
	// its targets (for AttackCarpet, over all the hosts of the /24).
	AttackPPS uint64
	// Start is when the attack starts, from the start of the scenario,
	// rounded up to a whole number of intervals so that the first attack
	// packet is sent at Start, not earlier. It lasts until the end.
	Start time.Duration
	// Duration is how long the scenario lasts, at most MaxDuration.
	Duration time.Duration

	// BackgroundHosts is the prefix of the hosts that receive normal
	// traffic; BackgroundCount of its addresses are picked (all of them
	// if it has fewer).
	BackgroundHosts netip.Prefix
	// BackgroundCount is how many hosts receive normal traffic.
	BackgroundCount int
	// BackgroundPPS is the rate of normal traffic in packets per second,
	// summed over the hosts, each getting an equal share: HTTPS download
	// segments (TCP from port 443, ACK and PSH, 1500 octets) and, one
	// packet in eight, DNS answers (UDP from port 53, 140 octets).
	BackgroundPPS uint64
	// VictimPPS is the victim's own traffic in packets per second, which
	// a rule for the attack should spare (see VictimMix); zero for none.
	// It goes to the victim (the first host of a carpet's) throughout.
	VictimPPS uint64

	// Seed makes the traffic: the same seed, the same packets.
	Seed uint64
	// Interval is the granularity of the model and of the pacing of the
	// emitters, between MinInterval and MaxInterval; default 100 ms.
	Interval time.Duration
	// Sources is the number of reflectors of a reflection attack, or of
	// spoofed sources of a flood in each interval; default 2000. It also
	// bounds the flows of the attack per interval.
	Sources int
	// Carpet is the reflection used by AttackCarpet; default AttackNTP.
	Carpet Attack
	// CarpetHosts is the number of hosts of the victim's /64 hit by an
	// IPv6 AttackCarpet; default 256. An IPv4 carpet hits all 256
	// addresses of the /24.
	CarpetHosts int
}

// withDefaults returns s with its zero optional fields set.
func (s Scenario) withDefaults() Scenario {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Sources == 0 {
		s.Sources = DefaultSources
	}
	if s.Carpet == AttackNone {
		s.Carpet = DefaultCarpet
	}
	if s.CarpetHosts == 0 {
		s.CarpetHosts = DefaultCarpetHosts
	}
	if s.Interval > 0 && s.Start > 0 && s.Start%s.Interval != 0 {
		s.Start += s.Interval - s.Start%s.Interval
	}
	return s
}

// invalid returns an ErrInvalidScenario error about field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("scenario %s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidScenario)
}

// validate checks a scenario whose defaults are set.
func (s *Scenario) validate() error {
	if s.Duration <= 0 || s.Duration > MaxDuration {
		return invalid("duration", "%v is outside (0, %v]", s.Duration, MaxDuration)
	}
	if s.Interval < MinInterval || s.Interval > MaxInterval {
		return invalid("interval", "%v is outside [%v, %v]", s.Interval, MinInterval, MaxInterval)
	}
	if s.Attack != AttackNone {
		if _, err := ParseAttack(string(s.Attack)); err != nil {
			return invalid("attack", "%q is not one of %v", s.Attack, Attacks())
		}
		if !s.Victim.IsValid() || s.Victim.Is4In6() || s.Victim.IsUnspecified() {
			return invalid("victim", "%v is not an IPv4 or IPv6 address", s.Victim)
		}
		if s.AttackPPS == 0 || s.AttackPPS > MaxPPS {
			return invalid("attack_pps", "%d is outside [1, %d]", s.AttackPPS, MaxPPS)
		}
		if s.Start < 0 || s.Start >= s.Duration {
			return invalid("start", "%v is outside [0, duration %v)", s.Start, s.Duration)
		}
	}
	if s.Sources < 1 || s.Sources > MaxSources {
		return invalid("sources", "%d is outside [1, %d]", s.Sources, MaxSources)
	}
	if !s.Carpet.IsReflection() {
		return invalid("carpet", "%q is not a reflection attack", s.Carpet)
	}
	if s.CarpetHosts < 1 || s.CarpetHosts > MaxCarpetHosts {
		return invalid("carpet_hosts", "%d is outside [1, %d]", s.CarpetHosts, MaxCarpetHosts)
	}
	if s.VictimPPS > MaxPPS {
		return invalid("victim_pps", "%d is above %d", s.VictimPPS, MaxPPS)
	}
	if s.VictimPPS > 0 && s.Attack == AttackNone {
		return invalid("victim_pps", "the victim's own traffic needs an attack (and its victim)")
	}
	if s.BackgroundPPS > MaxPPS {
		return invalid("background_pps", "%d is above %d", s.BackgroundPPS, MaxPPS)
	}
	if s.BackgroundPPS > 0 || s.BackgroundCount > 0 {
		if !s.BackgroundHosts.IsValid() || s.BackgroundHosts.Addr().Is4In6() {
			return invalid("background_hosts", "%v is not an IPv4 or IPv6 prefix", s.BackgroundHosts)
		}
		if s.BackgroundHosts != s.BackgroundHosts.Masked() {
			return invalid("background_hosts", "%v has host bits set; write %v", s.BackgroundHosts, s.BackgroundHosts.Masked())
		}
		if s.BackgroundCount < 1 || s.BackgroundCount > MaxBackgroundHosts {
			return invalid("background_count", "%d is outside [1, %d]", s.BackgroundCount, MaxBackgroundHosts)
		}
	}
	return nil
}

// IPv6 reports whether the scenario sends any IPv6 traffic.
func (s *Scenario) IPv6() bool {
	if s.Attack != AttackNone && s.Victim.Is6() {
		return true
	}
	return s.BackgroundPPS > 0 && s.BackgroundHosts.Addr().Is6()
}
