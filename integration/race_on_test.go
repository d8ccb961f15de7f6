//go:build race

package integration

// raceEnabled: the race detector slows the simulated-time tests about
// tenfold, so they play shorter runs under it.
const raceEnabled = true
