#!/bin/bash
# Captures what real exporters send for ../../testdata/traffic.pcap:
# softflowd (NetFlow v5, v9, IPFIX, unsampled and 1-in-4 sampled) and
# pmacctd's sfprobe plugin (sFlow v5, unsampled and 1-in-4), each into a pcap
# of the UDP datagrams on loopback, inside a network namespace of its own.
# Run as root from this directory; needs softflowd, pmacct, tcpdump, iproute2.
set -euo pipefail
PCAP=$(realpath ../../testdata/traffic.pcap)
NS=fgcap$$
WORK=$(mktemp -d)
ip netns add "$NS"
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ip -n "$NS" link set lo up

# capture OUT PORT CMD...: runs CMD in the namespace while tcpdump records
# UDP datagrams to PORT into OUT.
capture() {
  local out=$1 port=$2; shift 2
  ip netns exec "$NS" tcpdump -i lo --immediate-mode -U -s 0 -w "$out" "udp dst port $port" 2>"$WORK/tcpdump.log" &
  local tpid=$!
  for _ in $(seq 50); do grep -q listening "$WORK/tcpdump.log" && break; sleep 0.1; done
  # Something must listen, or the kernel answers with ICMP port unreachable
  # (harmless, but the exporter may see errors).
  ip netns exec "$NS" /usr/bin/python3 -c "
import socket,time
s=socket.socket(); s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.1',$port)); s.settimeout(30)
end=time.time()+30
while time.time()<end:
    try: s.recv(65535)
    except socket.timeout: break
" &
  local lpid=$!
  sleep 0.3
  ip netns exec "$NS" "$@" >"$WORK/exporter.log" 2>&1 || { cat "$WORK/exporter.log"; }
  sleep 0.5
  kill -INT "$tpid"; wait "$tpid" || true
  kill "$lpid"; wait "$lpid" 2>/dev/null || true
  echo "$out: $(tcpdump -nr "$out" 2>/dev/null | wc -l) datagrams"
}

for v in 5 9 10; do
  capture "softflowd-v$v.pcap" 2055 softflowd -d -r "$PCAP" -n 127.0.0.1:2055 -v $v -m 100000 -p "$WORK/sfd.pid" -T full -6
  capture "softflowd-v$v-sampled4.pcap" 2055 softflowd -d -r "$PCAP" -n 127.0.0.1:2055 -v $v -m 100000 -p "$WORK/sfd.pid" -T full -6 -s 4
done

# pmacctd loses the plugin's last buffer when a savefile ends: feed it the
# capture followed by 300 filler packets to 192.0.2.250 (the tests ignore
# that host), and keep the buffers small.
/usr/bin/python3 - "$PCAP" "$WORK/padded.pcap" <<'PY'
import sys
from scapy.all import IP, UDP, Ether, PcapReader, PcapWriter
w = PcapWriter(sys.argv[2], linktype=1, sync=False)
last = 0
for p in PcapReader(sys.argv[1]):
    w.write(p); last = p.time
for k in range(300):
    f = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.249", dst="192.0.2.250") / UDP(sport=9, dport=9)
    f.time = last + 1 + k / 1000
    w.write(f)
w.close()
PY

for rate in 1 4; do
  cat >"$WORK/pmacctd.conf" <<CONF
daemonize: false
pcap_savefile: $WORK/padded.pcap
pcap_savefile_wait: false
plugins: sfprobe[sf]
sfprobe_receiver[sf]: 127.0.0.1:6343
sfprobe_agentip[sf]: 192.0.2.1
sampling_rate[sf]: $rate
plugin_buffer_size: 1024
plugin_pipe_size: 102400000
CONF
  name=pmacctd-sflow.pcap
  [ "$rate" = 1 ] || name=pmacctd-sflow-sampled$rate.pcap
  capture "$name" 6343 timeout 20 pmacctd -f "$WORK/pmacctd.conf"
done
