log { level = "loud" }

bgp {
  asn       = 0
  router_id = "not-an-ip"
  neighbor "edge" {
    address  = "192.0.2.1"
    asn      = 65001
    famlies  = ["ipv4-unicast"]
  }
}
