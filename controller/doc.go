// Package controller owns the daemon: it wires sources, detection and the
// embedded BGP speaker together, runs the mitigation state machine (respond
// to an attack per policy, announce, extend while it lasts, escalate,
// withdraw when its time has passed, manual ban and unban), keeps active
// mitigations in a crash-safe store, and holds all mutable control-plane
// state in one event loop.
package controller
