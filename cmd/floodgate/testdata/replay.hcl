# The policy TestReplay plays testdata/ntp-reflection.pcap against.
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24"]
  threshold "incoming" { pps = "10kpps" } # the attack is 5× this
  response "reflection" {
    when = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "30s"
  }
}
