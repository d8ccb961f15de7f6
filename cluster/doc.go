// Package cluster runs Floodgate as a cluster on Kafka: collectors publish
// decoded flow records to the flow topic, detectors consume it in a
// consumer group and write their decisions to the mitigation topic, and
// speakers follow that topic and announce its active set. One process may
// hold any of the three roles (kafka.roles); the single node
// (controller.Daemon) holds all three with in-process links and needs no
// Kafka.
//
// The parts:
//
//   - Publisher: a sources.Sink that keys every record by the partitioning
//     rule (topics.Keys with the policy's hostgroups) and produces it to
//     the flow topic, buffering within a bound while brokers are away and
//     counting what it drops.
//   - GoFlow2Source: reads goflow2's own topic (-format=bin) in a consumer
//     group of collectors and feeds a sink.
//   - FlowReader: a detector's consumer of the flow topic; it feeds the
//     detection engine and tells the node which partitions it owns.
//   - Log: the mitigation topic, followed whole; it is the store of a
//     detector's mitigation loop (LogStore) and the source of a speaker's
//     announcements (SpeakerSet).
//   - Node: the roles assembled, with the API.
package cluster
