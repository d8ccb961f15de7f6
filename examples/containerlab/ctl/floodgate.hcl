# Generated from a lab.Topology by integration/lab (Topology.Containerlab):
# Floodgate in node ctl, AS 65000. Check it with: floodgate check --config FILE

log { level = "info" }

# Flow exports: floodgate-gen in this container sends to loopback.
sources {
  netflow "exports" { listen = "[::]:2055" }
  sflow "sflow" { listen = "[::]:6343" }
}

bgp {
  asn              = 65000
  router_id        = "10.0.1.1"
  rtbh_communities = ["65000:666"]

  neighbor "frr-v4" {
    address       = "10.0.1.2"
    asn           = 65001
    local_address = "10.0.1.1"
    families      = ["ipv4-unicast", "ipv4-flowspec", "ipv6-flowspec"]
  }

  neighbor "frr-v6" {
    address       = "2001:db8:1::2"
    asn           = 65001
    local_address = "2001:db8:1::1"
    families      = ["ipv6-unicast"]
  }
}

api { socket = "/run/floodgate/api.sock" }
mitigation { state_file = "/var/lib/floodgate/state.db" }

hostgroup "lab" {
  prefixes = ["203.0.113.0/24", "2001:db8:ffff::/48"]

  threshold "incoming" {
    pps = "20kpps"
    bps = "200Mbps"
    udp { pps = "10kpps" }
  }

  # A reflection (one UDP source port, such as NTP's 123): a FlowSpec rule.
  response "reflection" {
    when     = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "5m"
  }

  # Anything else: blackhole the victim.
  response "blackhole" {
    rtbh {}
    duration = "5m"
  }
}
