# Initech has no special needs: the defaults apply (their thresholds and
# the catch-all blackhole with a five-minute hold). A two-line hostgroup
# is enough.

hostgroup "initech" {
  prefixes = ["203.0.113.0/24", "2001:db8:300::/48"]
}
