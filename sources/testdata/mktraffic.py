#!/usr/bin/python3
# Writes traffic.pcap, the capture every source test decodes: a mix of the
# packets a DDoS collector sees (UDP reflection, SYN flood, an established TCP
# session, ICMP, IPv4 fragments and options, IPv6 with extension headers and
# fragments, 802.1Q, QinQ and MPLS) between documentation addresses, over
# about two seconds. Deterministic (fixed seed): rerunning it gives the same
# file. Needs Debian's python3-scapy: /usr/bin/python3 mktraffic.py OUT
import random
import sys

from scapy.all import (ARP, GRE, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether,
                       ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, PcapWriter, Raw, fragment)
from scapy.contrib.mpls import MPLS
from scapy.layers.inet6 import fragment6

out = sys.argv[1] if len(sys.argv) > 1 else "traffic.pcap"
rnd = random.Random(3)
T0 = 1_700_000_000.0
pkts = []  # (time, packet)


def eth():
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def add(t, p):
    pkts.append((T0 + t, p))


def pay(n):
    return Raw(bytes(rnd.randrange(256) for _ in range(n)))


# 1. NTP reflection: 12 reflectors, 8 packets each, 468-byte IP packets.
for i in range(12):
    dport = rnd.randrange(1024, 65535)
    for k in range(8):
        add(0.05 * i + 0.1 * k, eth() / IP(src=f"198.51.100.{i + 1}", dst="203.0.113.10") /
            UDP(sport=123, dport=dport) / pay(440))

# 2. SYN flood: 40 spoofed sources, 3 SYNs each.
for i in range(40):
    sport = rnd.randrange(1024, 65535)
    for k in range(3):
        add(0.02 * i + 0.5 * k, eth() / IP(src=f"198.51.100.{100 + i}", dst="203.0.113.11") /
            TCP(sport=sport, dport=80, flags="S", seq=rnd.randrange(1 << 32)))

# 3. An established HTTPS session, both directions.
c, s = "198.51.100.50", "203.0.113.12"
add(0.0, eth() / IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="S"))
add(0.01, eth() / IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="SA"))
add(0.02, eth() / IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="A"))
for k in range(12):
    add(0.03 + 0.1 * k, eth() / IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="PA") / pay(rnd.randrange(50, 500)))
    add(0.04 + 0.1 * k, eth() / IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="PA") / pay(rnd.randrange(500, 1000)))
add(1.5, eth() / IP(src=c, dst=s) / TCP(sport=40000, dport=443, flags="FA"))
add(1.51, eth() / IP(src=s, dst=c) / TCP(sport=443, dport=40000, flags="FA"))

# 4. ICMP: echo requests and replies, port unreachables.
for k in range(10):
    add(0.1 * k, eth() / IP(src="198.51.100.60", dst="203.0.113.10") / ICMP(type=8, id=7, seq=k) / pay(56))
    add(0.1 * k + 0.001, eth() / IP(src="203.0.113.10", dst="198.51.100.60") / ICMP(type=0, id=7, seq=k) / pay(56))
for k in range(5):
    add(0.2 * k, eth() / IP(src="198.51.100.61", dst="203.0.113.10") / ICMP(type=3, code=3) /
        IP(src="203.0.113.10", dst="198.51.100.61") / UDP(sport=53, dport=33434))

# 5. IPv4 fragments: three 2400-byte UDP datagrams in three fragments each.
for k in range(3):
    dg = IP(src="198.51.100.70", dst="203.0.113.13", id=1000 + k) / UDP(sport=11211, dport=rnd.randrange(1024, 65535)) / pay(2400)
    for j, f in enumerate(fragment(dg, fragsize=1000)):
        add(0.3 * k + 0.001 * j, eth() / f)

# 6. IPv4 with options (record route), TCP ACKs.
for k in range(5):
    add(0.25 * k, eth() / IP(src="198.51.100.71", dst="203.0.113.13", options=b"\x07\x07\x04" + bytes(4) + b"\x00") /
        TCP(sport=5555, dport=22, flags="A") / pay(100))

# 7. IPv6 DNS responses to a victim.
for i in range(4):
    for k in range(5):
        add(0.1 * i + 0.3 * k, eth() / IPv6(src=f"2001:db8:bad::{i + 1}", dst="2001:db8:ffff::10") /
            UDP(sport=53, dport=rnd.randrange(1024, 65535)) / pay(rnd.randrange(100, 600)))

# 8. IPv6 SYNs.
for k in range(10):
    add(0.15 * k, eth() / IPv6(src="2001:db8:bad::20", dst="2001:db8:ffff::11") / TCP(sport=30000 + k, dport=443, flags="S"))

# 9. ICMPv6 echo.
for k in range(8):
    add(0.2 * k, eth() / IPv6(src="2001:db8:bad::30", dst="2001:db8:ffff::10") / ICMPv6EchoRequest(id=1, seq=k) / pay(32))

# 10. IPv6 hop-by-hop options then UDP.
for k in range(5):
    add(0.3 * k, eth() / IPv6(src="2001:db8:bad::40", dst="2001:db8:ffff::12") / IPv6ExtHdrHopByHop() /
        UDP(sport=4000, dport=5000) / pay(64))

# 11. IPv6 fragments: two 2000-byte UDP datagrams.
for k in range(2):
    p = (IPv6(src="2001:db8:bad::50", dst="2001:db8:ffff::12") / IPv6ExtHdrFragment(id=77 + k) /
         UDP(sport=53, dport=6000 + k) / pay(2000))
    for j, f in enumerate(fragment6(p, 1280)):
        add(0.5 * k + 0.001 * j, eth() / f)

# 12. 802.1Q-tagged UDP.
for k in range(20):
    add(0.09 * k, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=100) /
        IP(src="198.51.100.80", dst="203.0.113.14") / UDP(sport=19, dport=7000) / pay(rnd.randrange(20, 600)))

# 13. QinQ-tagged TCP.
for k in range(10):
    add(0.17 * k, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88a8) / Dot1AD(vlan=200) / Dot1Q(vlan=10) /
        IP(src="198.51.100.81", dst="203.0.113.14") / TCP(sport=6000, dport=25, flags="PA") / pay(300))

# 13b. Double 802.1Q tags (QinQ with the older 0x8100 outer tag).
for k in range(6):
    add(0.23 * k, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=300) / Dot1Q(vlan=30) /
        IP(src="198.51.100.84", dst="203.0.113.14") / UDP(sport=1900, dport=9000) / pay(200))

# 14. MPLS, two labels, IPv4 UDP.
for k in range(10):
    add(0.13 * k, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8847) / MPLS(label=1000, s=0) /
        MPLS(label=2000, s=1) / IP(src="198.51.100.82", dst="203.0.113.15") / UDP(sport=389, dport=8000) / pay(300))

# 15. GRE (no ports).
for k in range(5):
    add(0.21 * k, eth() / IP(src="198.51.100.83", dst="203.0.113.15") / GRE() / IP(src="10.0.0.1", dst="10.0.0.2") / pay(80))

# 16. Two ARP frames: not IP, counted by nobody.
add(0.0, Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="203.0.113.1", pdst="203.0.113.10"))
add(1.0, Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="203.0.113.1", pdst="203.0.113.10"))

pkts.sort(key=lambda tp: tp[0])
w = PcapWriter(out, linktype=1, sync=False)
for t, p in pkts:
    p.time = t
    w.write(p)
w.close()
print(f"{out}: {len(pkts)} packets")
