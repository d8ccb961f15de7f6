// Package lab owns the routing daemons that integration tests run as
// "routers": it starts and stops them and reads back what they received.
//
// Every daemon is started by a test helper that takes a testing.TB, writes
// its configuration to a directory of its own, owns exactly the process it
// started (it is stopped by PID, never by name) and prints the interesting
// part of the daemon's log when the test fails.
//
// Two ways to run routers:
//
//   - StartGoBGP runs one gobgpd on loopback addresses, next to a
//     controller run on loopback too (StartFloodgate).
//   - Up brings a Topology up in network namespaces: a ctl namespace for
//     the controller (StartFloodgateIn, or StartCtlGoBGP to drive
//     announcements with the gobgp CLI), edge routers of each kind (FRR,
//     BIRD, gobgpd, ExaBGP as a recorder of every UPDATE) peering with it
//     over veth pairs, and plain hosts such as a victim. The Lab waits for
//     sessions (WaitSessions), restarts routers (RestartRouter), shows
//     kernel routes (KernelRoute), enforces received FlowSpec rules with
//     nftables (InstallFlowSpec, FlowSpecCounters) and sends probe traffic
//     between namespaces (ProbeUDP). It tears everything down when the test
//     ends, fails, or is interrupted. The same Topology renders containerlab
//     files (Topology.Containerlab) for Docker hosts.
//
// Each router kind implements Router and normalises what it shows into
// Route, whose Prefix is a canonical text of the NLRI (FlowSpecText), so
// one expected route can be checked against every router: Comparable,
// ReportedBy (for the few fields a router cannot show, documented on FRR
// and BIRD), CompareTable, WaitTable and Lab.WaitRoutes. WaitRoute and
// WaitNoRoute poll for single routes.
//
// Tests that use this package are integration tests: call Require (and
// RequireRoot where needed) first. They skip under -short and when a
// prerequisite is missing, unless FLOODGATE_INTEGRATION=1 is set (by
// `make test` and CI), in which case a missing prerequisite fails the test.
// The namespace lab needs the Debian packages iproute2, frr, bird2, gobgpd,
// exabgp and nftables.
package lab
