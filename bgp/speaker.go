// Package bgp is the speaker: the embedded GoBGP server, its neighbours,
// and the encoding of flowspec announcements into GoBGP paths. It is the
// one package that imports GoBGP; it announces and withdraws what it is
// given and decides nothing.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// Speaker is the embedded GoBGP server. There is one per process: GoBGP's
// serve loop never returns, so the server is created once and started and
// stopped with StartBgp/StopBgp.
type Speaker struct {
	cfg policies.BGP
	log hclog.Logger
	srv *server.BgpServer

	serveOnce sync.Once
	mu        sync.Mutex
	running   bool
	opened    bool // OpenSessions has added the neighbours
	cancel    context.CancelFunc
	watchDone chan struct{}
}

// NewSpeaker returns a speaker for cfg. It starts nothing.
func NewSpeaker(cfg policies.BGP, logger hclog.Logger) *Speaker {
	l := logger.Named("bgp")
	return &Speaker{
		cfg: cfg,
		log: l,
		srv: server.NewBgpServer(server.LoggerOption(&gobgpLogger{l.Named("gobgp")})),
	}
}

// Start starts the BGP instance and rejects every route neighbours send
// (the speaker only announces). It opens no session: OpenSessions does,
// once what must be announced first is in the RIB.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("bgp: already started")
	}
	s.serveOnce.Do(func() { go s.srv.Serve() })
	global := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: -1,
	}
	if s.cfg.Listen.IsValid() {
		global.ListenPort = int32(s.cfg.Listen.Port())
		global.ListenAddresses = []string{s.cfg.Listen.Addr().String()}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("bgp: start: %w", err)
	}
	unwind := func(err error) error {
		_ = s.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		return err
	}
	if err := s.rejectImports(ctx); err != nil {
		return unwind(err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if err := s.watchPeers(wctx, done); err != nil {
		cancel()
		return unwind(err)
	}
	s.running, s.opened, s.cancel, s.watchDone = true, false, cancel, done
	s.log.Info("speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID.String(), "listen", listenString(s.cfg.Listen))
	return nil
}

// OpenSessions adds the configured neighbours, which opens the sessions.
// restarting says that the RIB holds routes the routers had before this
// process started (restored mitigations): with graceful restart on, the
// sessions then open as a restarting speaker (Restart State and
// Forwarding State bits set), so that helpers keep the stale routes, and
// GoBGP holds updates back until the routers' End-of-RIB (or the
// deferral time) and then sends the whole RIB followed by End-of-RIB.
// Routers drop whatever stale route that RIB no longer has.
//
// Without restarting, the Forwarding State bit is clear and helpers drop
// any stale routes of ours at once (RFC 4724, 4.2): nothing of ours is
// meant to stay.
func (s *Speaker) OpenSessions(ctx context.Context, restarting bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return errors.New("bgp: open sessions: the speaker is not running")
	}
	if s.opened {
		return errors.New("bgp: sessions already open")
	}
	gr := s.cfg.GracefulRestart
	restarting = restarting && gr.Enabled
	var added []string
	for _, n := range s.cfg.Neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(n, s.cfg, restarting)}); err != nil {
			for _, a := range added {
				_ = s.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: a})
			}
			return fmt.Errorf("bgp: add neighbor %s (%s): %w", n.Name, n.Address, err)
		}
		added = append(added, n.Address.String())
		s.log.Info("neighbor configured", "name", n.Name, "address", n.Address.String(), "asn", n.ASN,
			"port", n.Port, "passive", n.Passive, "families", n.Families)
	}
	s.opened = true
	if gr.Enabled {
		s.log.Info("graceful restart", "restarting", restarting, "restart_time", gr.RestartTime.String(),
			"notification", gr.Notification, "long_lived", gr.LongLived)
	}
	return nil
}

// rejectImports installs a global import policy that rejects every route
// learnt from a neighbour (internal or external) and accepts the speaker's
// own: Floodgate only announces. The global import policy sees local paths
// too, so a plain default-reject would drop them.
func (s *Speaker) rejectImports(ctx context.Context) error {
	const name = "floodgate-reject-learnt"
	stmt := func(n string, rt api.Conditions_RouteType) *api.Statement {
		return &api.Statement{
			Name:       n,
			Conditions: &api.Conditions{RouteType: rt},
			Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
		}
	}
	pol := &api.Policy{Name: name, Statements: []*api.Statement{
		stmt(name+"-internal", api.Conditions_ROUTE_TYPE_INTERNAL),
		stmt(name+"-external", api.Conditions_ROUTE_TYPE_EXTERNAL),
	}}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol, ReferExistingStatements: false}); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: name}},
		DefaultAction: api.RouteAction_ACCEPT,
	}}); err != nil {
		return fmt.Errorf("bgp: assign import policy: %w", err)
	}
	return nil
}

func listenString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "none (connects out only)"
	}
	return ap.String()
}

// Stop closes every session and stops the BGP instance. GoBGP v3 ends
// each session with a NOTIFICATION Cease (Peer De-configured), never Hard
// Reset: routers that negotiated graceful restart with the N bit (RFC
// 8538) keep the routes, stale, for the restart time; others drop them.
// (A "keep the routes" choice on StopBgp exists only in GoBGP v4; to drop
// them, withdraw first: withdraw_on_shutdown.)
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.cancel()
	<-s.watchDone
	s.running, s.opened = false, false
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		return fmt.Errorf("bgp: stop: %w", err)
	}
	s.log.Info("speaker stopped")
	return nil
}

// watchPeers logs neighbour state changes. GoBGP calls the callback from
// its own goroutine; it only logs, so it never blocks GoBGP.
func (s *Speaker) watchPeers(ctx context.Context, done chan struct{}) error {
	started := make(chan error, 1)
	go func() {
		defer close(done)
		err := s.srv.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
			pe := r.GetPeer()
			if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE || pe.Peer == nil || pe.Peer.State == nil {
				return
			}
			st := pe.Peer.State
			s.log.Info("neighbor state", "address", st.NeighborAddress, "asn", st.PeerAsn,
				"state", st.SessionState.String())
		})
		started <- err
		if err == nil {
			<-ctx.Done()
		}
	}()
	if err := <-started; err != nil {
		<-done
		return fmt.Errorf("bgp: watch peers: %w", err)
	}
	return nil
}

func peerConfig(n policies.Neighbor, g policies.BGP, restarting bool) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.ASN,
			AuthPassword:    n.Password,
			Description:     n.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 90, KeepaliveInterval: 30}},
		Transport: &api.Transport{
			PassiveMode: n.Passive,
			RemotePort:  uint32(n.Port),
		},
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if n.Multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.Multihop)}
	}
	gr := g.GracefulRestart
	if gr.Enabled {
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:             true,
			RestartTime:         uint32(gr.RestartTime / time.Second),
			NotificationEnabled: gr.Notification,
			DeferralTime:        uint32(gr.DeferralTime / time.Second),
			LonglivedEnabled:    gr.LongLived,
			// Sets the Restart State bit and, for every family, the
			// Forwarding State bit (GoBGP sets both from this one flag).
			LocalRestarting: restarting,
		}
	}
	for _, f := range n.Families {
		as := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: familyOf(f), Enabled: true}}
		if gr.Enabled {
			as.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
			if gr.LongLived {
				as.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
					Enabled: true, RestartTime: uint32(gr.LongLivedTime / time.Second)}}
			}
		}
		p.AfiSafis = append(p.AfiSafis, as)
	}
	return p
}

func familyOf(name string) *api.Family {
	switch name {
	case "ipv6-unicast":
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	case "ipv4-flowspec":
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}
	case "ipv6-flowspec":
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}
	default:
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
}

// Announce adds a to the global RIB, which sends it to every neighbour
// that negotiated its family.
func (s *Speaker) Announce(ctx context.Context, a *flowspec.Announcement) error {
	p, err := Path(a)
	if err != nil {
		return err
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("bgp: announce %s: %w", a.Key(), err)
	}
	return nil
}

// Withdraw removes a from the global RIB. It always names the path: an
// empty DeletePathRequest would withdraw everything.
func (s *Speaker) Withdraw(ctx context.Context, a *flowspec.Announcement) error {
	p, err := Path(a)
	if err != nil {
		return err
	}
	if p == nil || p.Nlri == nil {
		return fmt.Errorf("bgp: withdraw %s: empty path", a.Key())
	}
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", a.Key(), err)
	}
	return nil
}

// PeerStatus is a neighbour's session state.
type PeerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the BGP FSM state: "established", "active", "idle", ...
	State string `json:"state"`
	// Established is true when the session is up.
	Established bool `json:"established"`
	// Advertised counts the routes sent, by family.
	Advertised map[string]uint64 `json:"advertised"`
	// GracefulRestart is the session's graceful restart; nil when it is
	// off in the configuration.
	GracefulRestart *PeerGracefulRestart `json:"graceful_restart,omitempty"`
}

// PeerGracefulRestart is graceful restart as a session negotiated it.
type PeerGracefulRestart struct {
	// PeerRestartTime is the restart time the neighbour advertised (zero
	// when it advertised none, or no graceful restart at all).
	PeerRestartTime uint32 `json:"peer_restart_time"`
	// Syncing is true while the speaker, restarted with routes, holds its
	// updates back until the neighbours' End-of-RIB (or the deferral
	// time).
	Syncing bool `json:"syncing"`
}

var familyNames = map[string]string{"AFI_IP/SAFI_UNICAST": "ipv4-unicast", "AFI_IP6/SAFI_UNICAST": "ipv6-unicast",
	"AFI_IP/SAFI_FLOW_SPEC_UNICAST": "ipv4-flowspec", "AFI_IP6/SAFI_FLOW_SPEC_UNICAST": "ipv6-flowspec"}

// Peers lists the neighbours and their session state.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil, nil
	}
	var out []PeerStatus
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		ps := PeerStatus{Address: p.State.NeighborAddress, ASN: p.State.PeerAsn, Advertised: map[string]uint64{},
			State:       strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "")),
			Established: p.State.SessionState == api.PeerState_ESTABLISHED}
		if p.Conf != nil {
			ps.Name = p.Conf.Description
		}
		if gr := p.GracefulRestart; gr.GetEnabled() {
			ps.GracefulRestart = &PeerGracefulRestart{PeerRestartTime: gr.PeerRestartTime, Syncing: gr.LocalRestarting}
		}
		for _, af := range p.AfiSafis {
			if af.Config == nil || af.Config.Family == nil || af.State == nil {
				continue
			}
			key := af.Config.Family.Afi.String() + "/" + af.Config.Family.Safi.String()
			name, ok := familyNames[key]
			if !ok {
				name = strings.ToLower(key)
			}
			ps.Advertised[name] = af.State.Advertised
		}
		out = append(out, ps)
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	return out, nil
}

// gobgpLogger routes GoBGP's logs into an hclog sub-logger.
type gobgpLogger struct{ l hclog.Logger }

func fieldArgs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		if k == gobgplog.FieldFacility {
			continue
		}
		out = append(out, k, fmt.Sprint(v))
	}
	return out
}

func (g *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	g.l.Error(msg, fieldArgs(f)...)
	panic(msg)
}
func (g *gobgpLogger) Fatal(msg string, f gobgplog.Fields) { g.l.Error("fatal: "+msg, fieldArgs(f)...) }
func (g *gobgpLogger) Error(msg string, f gobgplog.Fields) { g.l.Error(msg, fieldArgs(f)...) }
func (g *gobgpLogger) Warn(msg string, f gobgplog.Fields)  { g.l.Warn(msg, fieldArgs(f)...) }
func (g *gobgpLogger) Info(msg string, f gobgplog.Fields)  { g.l.Debug(msg, fieldArgs(f)...) }
func (g *gobgpLogger) Debug(msg string, f gobgplog.Fields) { g.l.Trace(msg, fieldArgs(f)...) }
func (g *gobgpLogger) SetLevel(gobgplog.LogLevel)          {}
func (g *gobgpLogger) GetLevel() gobgplog.LogLevel {
	switch {
	case g.l.IsTrace():
		return gobgplog.DebugLevel
	case g.l.IsDebug():
		return gobgplog.InfoLevel
	}
	return gobgplog.WarnLevel
}
