# Global settings for a detector shared by several customers. Each customer
# has a file of its own (acme.hcl, globex.hcl, initech.hcl); the daemon
# merges every *.hcl file of this directory:
#
#   floodgate run   --config examples/multi-customer
#   floodgate check --config examples/multi-customer --explain 198.51.100.7

log {
  level = "info"
}

sources {
  netflow "border" {
    listen = "0.0.0.0:2055"
    # The border routers sample 1 packet in 2048 but announce it in
    # options data; this one does not, so it is set here.
    exporter "192.0.2.11" {
      sampling_rate = 2048
    }
  }
  sflow "tor-switches" {
    listen = "0.0.0.0:6343"
  }
}

bgp {
  asn       = 64500
  router_id = "192.0.2.254"

  # Blackhole routes point at an address each edge router routes to
  # discard (Null0, blackhole), so that iBGP peers can use them as is.
  rtbh_next_hop_ipv4 = "192.0.2.1"
  rtbh_communities   = ["64500:666"]

  neighbor "edge1" {
    address       = "192.0.2.11"
    asn           = 64500 # iBGP
    local_address = "192.0.2.254"
    announce      = ["rtbh", "flowspec"]
  }
  neighbor "edge2" {
    address  = "192.0.2.12"
    asn      = 64500
    announce = ["rtbh"] # this one does not run FlowSpec
  }
}

mitigation {
  max_active = 2000
  state_file = "/var/lib/floodgate/state.db"
}

# Every hostgroup starts from these. A hostgroup's own threshold block
# replaces the default for its direction; its responses come before these.
defaults {
  ewma = "2s"
  threshold "incoming" {
    pps = "200kpps"
    bps = "2Gbps"
    tcp_syn { pps = "50kpps" }
    # The whole customer at once: many small floods to many hosts.
    group { bps = "10Gbps" }
  }

  # The catch-all: blackhole the victim, and keep the route for five
  # minutes after the attack ended so that it does not flap.
  response "blackhole" {
    rtbh {}
    duration = "20m"
    hold     = "5m"
  }
}
