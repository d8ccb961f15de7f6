# A speaker of the example cluster (see ../README.md). It reads the whole
# mitigation topic from its start, checks every mitigation against this
# policy, and announces the active set to its routers. The README runs
# two, made from this file: the second has its own node name, API socket,
# router_id and local_address.
#
#   floodgate check --config examples/cluster/nodes/speaker.hcl

log {
  level = "info"
}

kafka {
  brokers = ["127.0.0.1:9092"]
  node    = "speaker-1" # unique in the cluster
  roles   = ["speaker"]

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

bgp {
  asn              = 65000
  router_id        = "192.0.2.11" # each speaker its own
  rtbh_communities = ["65000:666"]

  # No listen: the speaker only connects out, so two speakers on one host
  # need no port of their own. A router tells its peers apart by address:
  # each speaker connects from its own local_address.

  # Routers keep our routes while a speaker is away (restart_time); a
  # speaker that comes back reads the mitigation topic first and opens
  # its sessions as a restarting speaker. The defaults, written out:
  graceful_restart {
    enabled       = true
    restart_time  = "120s"
    notification  = true
    deferral_time = "5s"
  }

  neighbor "edge1" {
    address       = "192.0.2.1"
    asn           = 65001
    local_address = "192.0.2.11" # each speaker its own address
  }
}

mitigation {
  dry_run              = false # true: this speaker logs and sends nothing
  max_active           = 1000  # what this speaker announces at most, all detectors together
  withdraw_on_shutdown = false # false: routers keep the routes through a stop
}

api {
  socket = "/tmp/floodgate-cluster/speaker-1.sock"
}

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
