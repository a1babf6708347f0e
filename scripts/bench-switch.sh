#!/bin/sh
# bench-switch.sh: switch latency ÷ physical floor (issue 15). For certbot
# and lego v5 new-key renewals and rotate_every commits, at each
# TTL, the completing run is the at(1) job the hooks schedule — no timer,
# no tick from the benchmark. An independent poller of both authoritative
# servers (every 50 ms) measures the floor: the last server's first serving
# of the new record + 2 × the largest TTL seen at the owner. Latency and
# floor are both counted from the renewal's start.
#
# Usage: scripts/bench-switch.sh [TTLS] [RUNS]   (default "5,15" and 3 renewals per world)
# Needs: go, at + atd (started when not running), named, postfix, Pebble,
# certbot, lego (scripts/install-deps.sh, scripts/install-acme.sh); root.
set -eu
cd "$(dirname "$0")/.."
DANEHOOK_BENCH=1 DANEHOOK_BENCH_TTLS=${1:-5,15} DANEHOOK_BENCH_RUNS=${2:-3} exec go test -count=1 -timeout 40m \
  -run '^TestBenchSwitchFloor$' -v ./scripts/e2e
