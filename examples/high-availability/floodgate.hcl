# One of two redundant Floodgate speakers (see README.md here). The second
# is the same file with its own router_id, local_address, state_file and
# API socket; both are fed the same flow exports.

sources {
  netflow "routers" { listen = "0.0.0.0:2055" }
}

bgp {
  asn       = 65000
  router_id = "192.0.2.11" # speaker B: 192.0.2.12

  # Routers keep our routes for restart_time while we are away (a crash,
  # SIGTERM, an upgrade). The defaults, written out:
  graceful_restart {
    enabled       = true
    restart_time  = "120s"
    notification  = true  # the N bit, RFC 8538
    deferral_time = "5s"
    long_lived    = false # see the README before turning this on
  }

  neighbor "edge1" {
    address       = "192.0.2.1"
    asn           = 65001
    local_address = "192.0.2.11" # speaker B: 192.0.2.12
  }
  neighbor "edge2" {
    address       = "192.0.2.2"
    asn           = 65001
    local_address = "192.0.2.11"
  }
}

mitigation {
  state_file = "/var/lib/floodgate/floodgate.db"
  # false (the default) keeps the routes at the routers through a stop;
  # true withdraws everything at a clean stop.
  withdraw_on_shutdown = false
}

api { socket = "/run/floodgate/api.sock" }

hostgroup "customers" {
  prefixes = ["198.51.100.0/24", "2001:db8:100::/48"]
  threshold "incoming" {
    pps  = "200kpps"
    bps  = "2Gbps"
  }
  response "amplification" {
    when     = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "10m"
  }
  response "other" {
    rtbh {}
    duration = "10m"
  }
}
