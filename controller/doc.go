// Package controller owns the daemon: it assembles the components, runs the
// mitigation state machine (respond to an attack per policy, announce,
// extend while it lasts, escalate, withdraw when its time has passed,
// manual ban and unban), keeps active mitigations in a crash-safe store,
// and holds all mutable control-plane state in one event loop.
//
// # The pipeline
//
// The daemon is a chain of stages, each joined to the next by a small
// interface, so that any link can be in-process (as in the single node) or
// a topic between processes:
//
//		sources ──sources.Sink──▶ detection ──<-chan detect.Event──▶ mitigation ──Announcer──▶ speaker
//		(flow, mirror, pcap)       (detect.Engine)                   (Mitigator: policy        (bgp.Speaker)
//		                                                               decision, budgets,
//		                                                               store)
//
//	  - Sources decode what they read into batches of sources.Record and hand
//	    them to a sources.Sink; Ingest never blocks on detection's tick.
//	  - Detection counts records per host and hostgroup, and each tick sends
//	    detect.Event values (attack started, updated, ended) carrying an
//	    attack's Signature.
//	  - The mitigation loop reads the events, decides with the policy
//	    (policies) which response applies, builds and checks the
//	    announcements (flowspec: the rule set, the safety checks), writes
//	    them to the store, and hands them to an Announcer.
//	  - The speaker (package bgp, the one package that imports GoBGP) sends
//	    what it is given to the routers and decides nothing.
//
// Imports point the same way (sources → detect → flowspec → bgp →
// controller; policies is the configuration all of them read); a test at
// the module root fails when one does not.
//
// Beside the chain run the API, hooks, metrics and the config watcher. A
// supervisor (package supervisor) owns every component: Daemon documents
// their order and which failures it restarts.
package controller
