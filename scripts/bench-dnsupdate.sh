#!/bin/sh
# bench-dnsupdate.sh: publish one TLSA record at each of 1,000 owners across
# 10 zones on a real BIND primary (internal/bindlab), two ways, in one run:
#
#   nsupdate   what a hand-written deploy script does: one `nsupdate -k`
#              process per owner (server, zone, update add, send)
#   danehook   dnsupdate.RFC2136.Apply: one UPDATE per zone, with zone
#              discovery (one SOA query per new owner) and with the zone set
#
# and print wall times, messages sent and the ratios. UPDATE counts are
# checked against the server's own counters (rndc stats).
#
# Usage: scripts/bench-dnsupdate.sh [OWNERS]   (nsupdate owners; default 1000)
#
# Needs: go, named, tsig-keygen, rndc, nsupdate; root (127.0.0.2 on lo).
# The nsupdate half takes about a minute for 1,000 owners on 2 cores.
set -eu

owners=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
for c in go named tsig-keygen rndc nsupdate; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench-dnsupdate: $c is not on PATH; run scripts/install-deps.sh" >&2; exit 2; }
done

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

cd "$root"
CI=true DANEHOOK_BENCH_NSUPDATE_OWNERS=$owners go test -count=1 -run '^$' \
  -bench '^(BenchmarkPublish1000Owners|BenchmarkNsupdate1000Owners)$' -benchtime 1x \
  ./pkg/dnsupdate/ | tee "$t/bench.txt" >&2

# Benchmark lines: name N value unit value unit ...
awk '
function metric(unit,   i) { for (i = 3; i < NF; i += 2) if ($(i + 1) == unit) return $i; return "" }
/^BenchmarkNsupdate1000Owners/          { ns_t = metric("ns/op"); ns_m = metric("msgs/op"); ns_o = metric("owners/op") }
/^BenchmarkPublish1000Owners\/discover/ { d_t = metric("ns/op"); d_m = metric("msgs/op"); d_u = metric("updates/op"); d_q = metric("queries/op"); d_o = metric("owners/op") }
/^BenchmarkPublish1000Owners\/zone-set/ { z_t = metric("ns/op"); z_m = metric("msgs/op"); z_u = metric("updates/op"); z_o = metric("owners/op") }
END {
  if (ns_t == "" || d_t == "" || z_t == "") { print "bench-dnsupdate: benchmark output incomplete" > "/dev/stderr"; exit 1 }
  # Scale nsupdate to 1,000 owners when fewer were run (it is linear: one process each).
  scale = d_o / ns_o
  printf "\nPublishing %d TLSA owners across 10 zones (BIND 9, loopback):\n\n", d_o
  printf "| method | wall time | messages | UPDATEs | SOA queries |\n|---|---|---|---|---|\n"
  printf "| nsupdate, one process per owner%s | %.2f s | %d | %d | 0 |\n", (scale != 1 ? sprintf(" (%d run, x%.0f)", ns_o, scale) : ""), ns_t * scale / 1e9, ns_m * scale, ns_m * scale
  printf "| danehook RFC2136.Apply, zone discovery | %.3f s | %d | %d | %d |\n", d_t / 1e9, d_m, d_u, d_q
  printf "| danehook RFC2136.Apply, zone set | %.3f s | %d | %d | 0 |\n", z_t / 1e9, z_m, z_u
  printf "\nRatio nsupdate / danehook: wall time %.0fx (discovery) and %.0fx (zone set); UPDATE messages %.0fx.\n",
    ns_t * scale / d_t, ns_t * scale / z_t, ns_m * scale / d_u
}' "$t/bench.txt"
