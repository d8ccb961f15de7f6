# ACME hosts game servers that attract amplification attacks. They want
# the reflected traffic dropped at the edge and nothing else touched.

hostgroup "acme" {
  prefixes = ["198.51.100.0/25", "2001:db8:100::/48"]

  # Their DNS resolvers answer big responses on purpose: never mitigate.
  whitelist = ["198.51.100.53/32"]

  # The tournament server's game port is never filtered: no FlowSpec rule
  # that could match it, and no RTBH of that host.
  whitelist_flow {
    dst      = "198.51.100.10/32"
    protocol = "udp"
    dst_port = 27960
  }

  threshold "incoming" {
    pps = "100kpps"
    bps = "1Gbps"
    udp { pps = "50kpps" }
  }

  # Reflection (NTP, DNS, memcached, SSDP, CLDAP...): one UDP source port
  # carries nearly all of the attack. Discard UDP from that port to the
  # victim; the builder picks the narrowest rule covering 95% of it.
  response "amplification" {
    when = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec {
      action   = "discard"
      coverage = 0.95
    }
    duration = "15m"

    # If the attack is still above threshold after 10 minutes, the rule
    # is not enough (saturated upstream links): blackhole the victim too.
    escalate {
      after = "10m"
      rtbh {}
    }
  }
}
