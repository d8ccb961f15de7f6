# /etc/floodgate/floodgate.hcl: a starting point for a production host.
# `make install` copies it there if no configuration exists yet. Add one
# file per customer next to it (see examples/multi-customer/), then
# `floodgate check --config /etc/floodgate` and `systemctl reload floodgate`.

log {
  level  = "info"
  format = "json" # for journald and log shippers
}

sources {
  netflow "routers" {
    listen = "0.0.0.0:2055"
  }
  sflow "switches" {
    listen = "0.0.0.0:6343"
  }
}

bgp {
  asn       = 64500
  router_id = "192.0.2.254"
  rtbh_next_hop_ipv4 = "192.0.2.1" # routed to discard on every edge router

  neighbor "edge1" {
    address = "192.0.2.11"
    asn     = 64500
  }
}

api {
  socket = "/run/floodgate/api.sock" # the CLI's default
}

metrics {
  listen = "127.0.0.1:9650"
}

mitigation {
  state_file = "/var/lib/floodgate/state.db"
  dry_run    = true # watch what it would do for a while, then set false
}

defaults {
  threshold "incoming" {
    pps = "500kpps"
    bps = "5Gbps"
  }
  response "blackhole" {
    rtbh {}
    duration = "20m"
    hold     = "5m"
  }
}

hostgroup "customers" {
  prefixes = ["198.51.100.0/24", "2001:db8::/32"]
}
