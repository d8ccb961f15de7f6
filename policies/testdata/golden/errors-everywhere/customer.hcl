
hostgroup "c" {
  prefixes = ["203.0.113.7/24", "2001:db8::/129"]

  threshold "incoming" {
    pps = "lots"
  }

  response "r" {
    when = attack.share.udp > "x"
    flowspec { action = "drop" }
    duration = "forever"
  }
}
