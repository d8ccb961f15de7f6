// Package integration holds Floodgate's end-to-end tests: the daemon built
// from cmd/floodgate, real flow datagrams on UDP, and real BGP daemons as
// the routers that receive its announcements. The tests skip under -short
// and when a prerequisite is missing, unless FLOODGATE_INTEGRATION=1 (set by
// `make test` and CI) turns the skip into a failure. Helpers that start the
// daemons live in integration/lab; wire-format encoders in
// integration/flowgen.
package integration
