bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}

hostgroup "shared-name" {
  prefixes = ["192.0.2.0/24"]
}
