# The same hostgroup name as in a.hcl, and the same prefix in another group.
hostgroup "shared-name" {
  prefixes = ["198.51.100.0/24"]
}

hostgroup "other" {
  prefixes = ["192.0.2.0/24"]
}

bgp {
  asn       = 65001
  router_id = "192.0.2.253"
}
