# A collector of the example cluster (see ../README.md). It decodes the
# routers' flow exports and publishes the records to the flow topic, keyed
# so that every count of a host, or of a hostgroup with group limits,
# reaches one detector. It detects nothing and opens no BGP session.
#
#   floodgate check --config examples/cluster/nodes/collector.hcl

log {
  level = "info"
}

kafka {
  brokers = ["127.0.0.1:9092"]
  node    = "collector-1" # unique in the cluster
  roles   = ["collector"]

  # Flow-topic messages kept in memory while the brokers are away; past
  # it, records are dropped and counted.
  max_buffered = 100000

  # One local broker holds one copy of each partition. On a real cluster
  # leave replication out (3). The topic names must be the same on every
  # node; these are the defaults.
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

sources {
  netflow "routers" {
    listen = "127.0.0.1:2055"
  }
  sflow "switches" {
    listen = "127.0.0.1:6343"
  }

  # goflow2's own topic (goflow2 -transport=kafka -format=bin), read by
  # the collectors in one consumer group that share its partitions.
  # kafka "goflow2" {
  #   topic = "goflow2-flows"
  #   # format = "goflow2"              # the default and only format
  #   # group  = "floodgate-collectors" # the default
  # }
}

# Every node needs a bgp block; only speakers open sessions. A ban made
# through this node's API is built from it: keep rtbh_communities and the
# RTBH next hops the same on every node.
bgp {
  asn              = 65000
  router_id        = "192.0.2.10"
  rtbh_communities = ["65000:666"]
}

api {
  socket = "/tmp/floodgate-cluster/collector-1.sock"
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
