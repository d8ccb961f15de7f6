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

// Speaker is the embedded GoBGP speaker. It runs one GoBGP instance per
// neighbour it connects to, and one more, listening, for the neighbours
// that connect to it (passive): each instance holds the same RIB. An
// instance per neighbour keeps graceful restart per neighbour: GoBGP v3
// ends a restart for every neighbour of an instance as soon as those that
// are up have sent End-of-RIB, which would make one that connects a moment
// later open its session without the restart bits (see OpenSessions).
//
// GoBGP's serve loop never returns, so each instance's server is created
// once and started and stopped with StartBgp/StopBgp.
type Speaker struct {
	cfg   policies.BGP
	log   hclog.Logger
	insts []*instance

	mu        sync.Mutex
	running   bool
	opened    bool // OpenSessions has added the neighbours
	detached  bool // Stop leaves the sessions to the process's exit
	cancel    context.CancelFunc
	runCtx    context.Context // lives from Start to Stop
	watches   sync.WaitGroup  // the instances' event watchers
	rearmDone chan struct{}   // closed when keepRestarting has returned
}

// instance is one GoBGP server and the neighbours it peers with.
type instance struct {
	srv       *server.BgpServer
	neighbors []policies.Neighbor
	listen    bool // accepts sessions on cfg.Listen
	serveOnce sync.Once
}

// NewSpeaker returns a speaker for cfg. It starts nothing.
func NewSpeaker(cfg policies.BGP, logger hclog.Logger) *Speaker {
	l := logger.Named("bgp")
	s := &Speaker{cfg: cfg, log: l}
	newInstance := func() *instance {
		return &instance{srv: server.NewBgpServer(server.LoggerOption(&gobgpLogger{l.Named("gobgp")}))}
	}
	var shared *instance
	if cfg.Listen.IsValid() {
		shared = newInstance()
		shared.listen = true
	}
	for _, n := range cfg.Neighbors {
		if n.Passive {
			if shared == nil {
				shared = newInstance()
			}
			shared.neighbors = append(shared.neighbors, n)
			continue
		}
		in := newInstance()
		in.neighbors = []policies.Neighbor{n}
		s.insts = append(s.insts, in)
	}
	if shared != nil || len(s.insts) == 0 {
		if shared == nil {
			shared = newInstance() // no neighbour: a RIB all the same
		}
		s.insts = append([]*instance{shared}, s.insts...)
	}
	return s
}

// Start starts the BGP instances and rejects every route neighbours send
// (the speaker only announces). It opens no session: OpenSessions does,
// once what must be announced first is in the RIB.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("bgp: already started")
	}
	if s.detached {
		return errors.New("bgp: the speaker was detached from its sessions")
	}
	wctx, cancel := context.WithCancel(context.Background())
	var started []*instance
	unwind := func(err error) error {
		cancel()
		s.watches.Wait()
		for _, in := range started {
			_ = in.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		}
		return err
	}
	for _, in := range s.insts {
		in.serveOnce.Do(func() { go in.srv.Serve() })
		global := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: -1}
		if in.listen {
			global.ListenPort = int32(s.cfg.Listen.Port())
			global.ListenAddresses = []string{s.cfg.Listen.Addr().String()}
		}
		if err := in.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
			return unwind(fmt.Errorf("bgp: start: %w", err))
		}
		started = append(started, in)
		if err := rejectImports(ctx, in.srv); err != nil {
			return unwind(err)
		}
		if err := s.watchPeers(wctx, in.srv); err != nil {
			return unwind(err)
		}
	}
	s.running, s.opened, s.cancel, s.runCtx = true, false, cancel, wctx
	s.rearmDone = nil
	s.log.Info("speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID.String(), "listen", listenString(s.cfg.Listen),
		"instances", len(s.insts))
	return nil
}

// OpenSessions adds the configured neighbours, which opens the sessions,
// all at once. restarting says that the RIB holds routes the routers had
// before this process started (restored mitigations): with graceful
// restart on, the sessions then open as a restarting speaker (Restart
// State and Forwarding State bits set), so that helpers keep the stale
// routes, and GoBGP holds updates back until the router's End-of-RIB (or
// the deferral time) and then sends the whole RIB followed by End-of-RIB.
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
	if gr.Enabled {
		s.log.Info("graceful restart", "restarting", restarting, "restart_time", gr.RestartTime.String(),
			"notification", gr.Notification, "long_lived", gr.LongLived)
	}
	type added struct {
		in   *instance
		addr string
	}
	var done []added
	for _, in := range s.insts {
		for _, n := range in.neighbors {
			if err := s.addPeer(ctx, in, n, restarting); err != nil {
				for _, a := range done {
					_ = a.in.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: a.addr})
				}
				return err
			}
			done = append(done, added{in, n.Address.String()})
		}
	}
	s.opened = true
	if restarting && len(s.insts[0].neighbors) > 1 {
		in := s.insts[0]
		rearm := make(chan struct{})
		s.rearmDone = rearm
		go func() {
			defer close(rearm)
			s.keepRestarting(s.runCtx, in, time.Now().Add(gr.RestartTime))
		}()
	}
	return nil
}

func (s *Speaker) addPeer(ctx context.Context, in *instance, n policies.Neighbor, restarting bool) error {
	if err := in.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(n, s.cfg, restarting)}); err != nil {
		return fmt.Errorf("bgp: add neighbor %s (%s): %w", n.Name, n.Address, err)
	}
	s.log.Info("neighbor configured", "name", n.Name, "address", n.Address.String(), "asn", n.ASN,
		"port", n.Port, "passive", n.Passive, "families", n.Families, "restarting", restarting)
	return nil
}

// keepRestarting keeps the neighbours of the listening instance, which
// shares one GoBGP server, restarting until each has connected once. GoBGP
// v3 ends the restart of every neighbour of a server (clears the flag
// behind the Restart State and Forwarding State bits) as soon as those
// that are up have sent End-of-RIB, counting those not yet connected as
// done; one that connected later would open its session without the bits,
// and the router would drop our stale routes at once (RFC 4724, 4.2). So a
// neighbour that is not connected and has lost the flag is added again
// with it, and one caught in the middle of opening is logged. This lasts
// until every neighbour has been up once or the restart time has passed
// (the routers have dropped the routes by then). The neighbours the
// speaker connects to have an instance each and need none of this.
func (s *Speaker) keepRestarting(ctx context.Context, in *instance, deadline time.Time) {
	byAddr := make(map[string]policies.Neighbor, len(in.neighbors))
	for _, n := range in.neighbors {
		byAddr[n.Address.String()] = n
	}
	up := make(map[string]bool, len(byAddr))
	warned := make(map[string]bool)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(up) < len(byAddr) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var rearm []string
		err := in.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			addr := p.GetConf().GetNeighborAddress()
			if _, ok := byAddr[addr]; !ok || up[addr] {
				return
			}
			switch p.GetState().GetSessionState() {
			case api.PeerState_ESTABLISHED:
				up[addr] = true
			case api.PeerState_OPENSENT, api.PeerState_OPENCONFIRM:
				if !p.GetGracefulRestart().GetLocalRestarting() && !warned[addr] {
					warned[addr] = true
					s.log.Warn("neighbor is opening its session without the restart bits; it may drop our routes until it has our updates", "address", addr)
				}
			default:
				if !p.GetGracefulRestart().GetLocalRestarting() {
					rearm = append(rearm, addr)
				}
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("graceful restart: list neighbors", "error", err.Error())
			}
			continue
		}
		for _, addr := range rearm {
			if err := in.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr}); err != nil {
				s.log.Warn("graceful restart: re-add neighbor", "address", addr, "error", err.Error())
				continue
			}
			if err := in.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(byAddr[addr], s.cfg, true)}); err != nil {
				s.log.Error("graceful restart: re-add neighbor", "address", addr, "error", err.Error())
				continue
			}
			s.log.Debug("neighbor added again as restarting: the restart ended before it connected", "address", addr)
		}
	}
}

// rejectImports installs a global import policy that rejects every route
// learnt from a neighbour (internal or external) and accepts the speaker's
// own: Floodgate only announces. The global import policy sees local paths
// too, so a plain default-reject would drop them.
func rejectImports(ctx context.Context, srv *server.BgpServer) error {
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
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol, ReferExistingStatements: false}); err != nil {
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
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

// Detach makes the next Stop leave the BGP sessions open, for a process
// about to exit: the kernel then closes them without a NOTIFICATION, which
// graceful restart helpers treat as a restart (RFC 4724): they keep the
// routes, stale, for the restart time, and the next start takes them over.
// A stop through GoBGP cannot do that: v3's StopBgp ends every session
// with a NOTIFICATION Cease (Peer De-configured), which makes a helper
// drop the routes at once, and where the N bit (RFC 8538) was negotiated
// GoBGP sends it as Cease Hard Reset, which means the same. (A stop that
// keeps the routes exists only in GoBGP v4.)
func (s *Speaker) Detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detached = true
}

// Stop closes every session with a NOTIFICATION, so that routers drop the
// routes, and stops the BGP instance; after Detach it leaves the sessions
// to close with the process instead (see Detach).
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.cancel()
	s.watches.Wait()
	if s.rearmDone != nil {
		<-s.rearmDone
	}
	s.running, s.opened = false, false
	if s.detached {
		s.log.Info("speaker stopped; its sessions close with the process, so that routers keep the routes for the restart time",
			"restart_time", s.cfg.GracefulRestart.RestartTime.String())
		return nil
	}
	var errs []error
	for _, in := range s.insts {
		if err := in.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: stop: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.log.Info("speaker stopped")
	return nil
}

// watchPeers logs the neighbour state changes of srv until ctx ends. GoBGP
// calls the callback from its own goroutine; it only logs, so it never
// blocks GoBGP.
func (s *Speaker) watchPeers(ctx context.Context, srv *server.BgpServer) error {
	started := make(chan error, 1)
	s.watches.Add(1)
	go func() {
		defer s.watches.Done()
		err := srv.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
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

// Announce adds a to the RIB of every instance, which sends it to every
// neighbour that negotiated its family.
func (s *Speaker) Announce(ctx context.Context, a *flowspec.Announcement) error {
	p, err := Path(a)
	if err != nil {
		return err
	}
	for _, in := range s.insts {
		if _, err := in.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			return fmt.Errorf("bgp: announce %s: %w", a.Key(), err)
		}
	}
	return nil
}

// Withdraw removes a from the RIB of every instance. It always names the path: an
// empty DeletePathRequest would withdraw everything.
func (s *Speaker) Withdraw(ctx context.Context, a *flowspec.Announcement) error {
	p, err := Path(a)
	if err != nil {
		return err
	}
	if p == nil || p.Nlri == nil {
		return fmt.Errorf("bgp: withdraw %s: empty path", a.Key())
	}
	var errs []error
	for _, in := range s.insts {
		if err := in.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", a.Key(), err))
		}
	}
	return errors.Join(errs...)
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
	err := s.listPeers(ctx, func(p *api.Peer) {
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

// listPeers calls fn for every neighbour of every instance.
func (s *Speaker) listPeers(ctx context.Context, fn func(*api.Peer)) error {
	for _, in := range s.insts {
		if err := in.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, fn); err != nil {
			return err
		}
	}
	return nil
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
