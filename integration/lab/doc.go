// Package lab owns the routing daemons that integration tests run as
// "routers": it starts and stops them and reads back what they received.
//
// Every daemon is started by a test helper that takes a testing.TB, writes
// its configuration under t.TempDir(), owns exactly the process it started
// (it is stopped by PID in a t.Cleanup, never by name) and prints the tail of
// the daemon's log when the test fails.
//
// The first router kind is gobgpd on loopback addresses (StartGoBGP). Each
// router kind implements Router, so the polling helpers WaitRoute and
// WaitNoRoute, and the Route type with its canonical texts, are shared by all
// of them; FRR, BIRD and ExaBGP in network namespaces are meant to be added
// the same way.
//
// Tests that use this package are integration tests: call Require (and
// RequireRoot where needed) first. They skip under -short and when a
// prerequisite is missing, unless FLOODGATE_INTEGRATION=1 is set (by
// `make test` and CI), in which case a missing prerequisite fails the test.
package lab
