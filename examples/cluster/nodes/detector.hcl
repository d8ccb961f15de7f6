# A detector of the example cluster (see ../README.md). It reads its share
# of the flow topic's partitions as a member of the detectors' consumer
# group, detects, applies the policy and writes its decisions to the
# mitigation topic. It opens no BGP session. The README runs three, made
# from this file with their own node name and API socket.
#
#   floodgate check --config examples/cluster/nodes/detector.hcl

log {
  level = "info"
}

kafka {
  brokers = ["127.0.0.1:9092"]
  node    = "detector-1" # unique in the cluster
  roles   = ["detector"]

  # group           = "floodgate-detectors" # the default
  # How long the brokers wait for a silent detector before its partitions,
  # and with them its mitigations, go to the others (1s to 5m; brokers
  # refuse less than their group.min.session.timeout.ms, 6 s by default).
  session_timeout = "6s"

  flow_topic {
    name        = "floodgate-flows-v1"
    partitions  = 12
    replication = 1
  }
  mitigation_topic {
    name        = "floodgate-mitigations-v1"
    replication = 1
  }
}

detection {
  tick = "200ms"
}

# Needed by the loader; a detector opens no session. Its RTBH routes carry
# these communities and next hops: keep them the same on every node.
bgp {
  asn              = 65000
  router_id        = "192.0.2.10"
  rtbh_communities = ["65000:666"]
}

mitigation {
  dry_run    = false # true: every speaker only logs this detector's decisions
  max_active = 1000  # this detector's mitigations at once (each speaker checks again)
}

api {
  socket = "/tmp/floodgate-cluster/detector-1.sock"
}

# Hooks run where the decisions are made: on the detectors.
# hooks {
#   webhook "chat" {
#     url = "https://chat.example.net/hooks/floodgate"
#   }
# }

# ---------------------------------------------------------------------------
# The policy. The same in collector.hcl, detector.hcl and speaker.hcl:
# collectors key records by these hostgroups, detectors count and decide by
# them, speakers check every mitigation against them before announcing it.
# Keep them identical on every node; a change of prefixes or group limits
# reaches the partition keys once every collector and detector restarted.

hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8:100::/48"]

  threshold "incoming" {
    pps = "20kpps"
    bps = "1Gbps"
  }

  response "reflection" {
    when     = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "10m"
  }

  response "blackhole" {
    rtbh {}
    duration = "10m"
  }
}

# A hostgroup with group limits: its records are keyed by the hostgroup
# ("g:hosting"), so that one detector counts its total and sees an attack
# spread thinly over many hosts.
hostgroup "hosting" {
  prefixes = ["198.51.100.0/24"]

  threshold "incoming" {
    pps = "20kpps"
    group { pps = "100kpps" }
  }

  response "carpet" {
    flowspec { action = "discard" }
    duration = "10m"
  }
}
