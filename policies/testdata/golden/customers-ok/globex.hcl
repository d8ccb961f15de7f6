# Globex runs web shops. SYN floods are rate-limited rather than dropped,
# so that real customers still get through while the servers' SYN cookies
# cope with the rest.

hostgroup "globex" {
  prefixes = ["198.51.100.128/25"]
  max_rules = 20

  threshold "incoming" {
    pps = "150kpps"
    tcp_syn { pps = "20kpps" }
    # A host whose traffic jumps to ten times its usual level, but not
    # below 30 kpps, is attacked too.
    relative {
      factor    = 10
      floor_pps = "30kpps"
    }
  }

  response "syn-flood" {
    when = attack.protocol == "tcp" && attack.share.tcp_syn > 0.8
    flowspec {
      action = "rate-limit"
      rate   = "50Mbps"
    }
    duration = "10m"
  }
}
