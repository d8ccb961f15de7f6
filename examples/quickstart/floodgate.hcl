# Floodgate quickstart configuration.
#
# `make run` starts the daemon on this file as it is. It listens for flow
# exports on loopback, watches the documentation prefixes and runs a BGP
# speaker with no neighbour, so detections and announcements appear in the
# log without a router. Point an exporter at it, for example:
#
#   softflowd -r capture.pcap -n 127.0.0.1:2055 -v 9
#
# Check a change with: floodgate check --config examples/quickstart

log {
  level  = "info" # trace, debug, info, warn or error
  format = "text" # text or json
}

detection {
  tick = "200ms" # how often counters become rates (100ms to 1m)
}

sources {
  # NetFlow v5, NetFlow v9 and IPFIX, told apart per datagram.
  netflow "routers" {
    listen         = "127.0.0.1:2055"
    receive_buffer = "32MiB" # exporters send in bursts: keep this large
    # sampling_rate = 1      # assumed when an export carries no rate

    # Per-exporter override of the sampling rate, whatever it announces:
    # exporter "192.0.2.1" {
    #   sampling_rate = 1000
    # }
  }

  sflow "switches" {
    listen = "127.0.0.1:6343"
  }
}

bgp {
  asn       = 65000
  router_id = "192.0.2.254"
  # listen  = "0.0.0.0:179" # accept sessions; by default Floodgate only dials out

  # Added to every blackhole route after 65535:666 (BLACKHOLE) and
  # 65535:65281 (NO_EXPORT).
  rtbh_communities = ["65000:666"]

  # An edge router. Uncomment and adapt to peer with a real one.
  # neighbor "edge1" {
  #   address  = "192.0.2.1"
  #   asn      = 65001
  #   # port     = 179
  #   # passive  = false
  #   # password = "tcp-md5-key"
  #   # multihop = 2
  #   # announce = ["rtbh", "flowspec"] # what this router gets
  #   # families = ["ipv4-unicast", "ipv4-flowspec", "ipv6-flowspec"]
  # }
}

# The JSON API (and /metrics) for the CLI: `floodgate status --config
# examples/quickstart`, `floodgate top --config examples/quickstart`.
api {
  socket = "floodgate.sock" # default /run/floodgate/api.sock
  # listen = "127.0.0.1:8080" # TCP as well; outside loopback set token
  # token  = "a-long-random-string"
}

# Prometheus metrics on their own listener (they are also on the API).
metrics {
  listen = "127.0.0.1:9650"
}

# Hooks on attack_started, mitigation_announced, mitigation_withdrawn.
# hooks {
#   exec "noc" {
#     path    = "/usr/local/bin/floodgate-notify" # args: <ip> <direction> <pps> attack_details|ban|unban
#     timeout = "10s"
#   }
#   webhook "chat" {
#     url = "https://chat.example.net/hooks/floodgate"
#   }
# }

mitigation {
  dry_run    = false          # true: log what would be announced, send nothing
  max_active = 10000          # cap on mitigations active at once
  state_file = "floodgate.db" # active mitigations survive a restart
}

# Monitored networks. A host is in the hostgroup with the most specific
# prefix that contains it.
hostgroup "documentation" {
  prefixes = [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
  ]

  # Per-host limits on traffic towards a host. Numbers, or strings with
  # units: "20kpps", "1.5Mpps"; "500Mbps", "2Gbps"; flows per second
  # "5kfps".
  threshold "incoming" {
    pps = "20kpps"
    bps = "1Gbps"
    udp { pps = "10kpps" }
  }

  ewma = "2s" # time constant of rate smoothing

  # Responses, first match wins. A reflection attack (one UDP source port
  # carries most of it) gets a FlowSpec discard for exactly that port;
  # anything else a blackhole of the victim.
  response "reflection" {
    when = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec {
      action = "discard"
    }
    duration = "10m"
  }

  response "blackhole" {
    rtbh {}
    duration = "10m"
    hold     = "1m" # keep the route a minute after the attack ended
  }
}
