#!/bin/sh
# bench-dnsupdate.sh: publish one TLSA 3 1 1 record at each of N owners in
# 1 and in 10 zones on a real BIND primary with a secondary (internal/bindlab,
# kept running by TestServeBenchLab), three ways timed side by side by
# hyperfine, from the same empty start each run:
#
#   danectl     `danectl publish` of a configuration with those owners
#               (lineages of up to 100 hosts): it reads every owner at the
#               primary, observes both authoritative servers, then sends the
#               additions in as few UPDATE messages as fit
#   floor       one `nsupdate -k` process sending each zone's records in one
#               message (850 records per message at most: nsupdate 9.18 does
#               not compress names and fails at about 870) and reading
#               nothing: the least a tool can do
#   per-owner   one `nsupdate -k` process per owner, as hand-written hook
#               scripts do
#
# then checks on the server's own counters (rndc stats) that a second
# `danectl publish` sends 0 UPDATEs, and prints the table of wall times and
# ratios to the floor.
#
# Usage: scripts/bench-dnsupdate.sh [N ...]      (default: 10 100 1000 5000)
#        ZONES="1 10" (default) sets the zone counts; PER_OWNER=0 skips the
#        per-owner runs (quick looks; their column then reads "-").
#
# Needs: go, named, tsig-keygen, rndc, nsupdate, hyperfine; root (127.0.0.2
# on lo). The per-owner runs dominate: about 8 ms per owner on 2 cores, so
# 5,000 owners take about a minute per run (timed once).
# Not run by CI (scripts/test.sh runs the Go benchmarks once with -benchtime=1x).
set -eu

sizes=${*:-10 100 1000 5000}
zones=${ZONES:-1 10}
root=$(cd "$(dirname "$0")/.." && pwd)
for c in go named tsig-keygen rndc nsupdate hyperfine; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench-dnsupdate: $c is not on PATH; run scripts/install-deps.sh" >&2; exit 2; }
done

t=$(mktemp -d)
lab_pid= lab_dir=
cleanup() {
  [ -z "$lab_pid" ] || { touch "$lab_dir/stop"; wait "$lab_pid" 2>/dev/null || true; }
  rm -rf "$t"
}
trap cleanup EXIT

cd "$root"
go build -o "$t/danectl" ./cmd/danectl
go test -c -o "$t/bindlab.test" ./internal/bindlab/

# updates prints the primary's count of UPDATE requests (rndc stats).
updates() {
  rm -f "$STATS"
  rndc -c "$RNDC_CONF" stats
  i=0
  until grep -q -- '--- Statistics Dump ---' "$STATS" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "bench-dnsupdate: rndc stats wrote nothing to $STATS" >&2; exit 1; }
    sleep 0.05
  done
  awk '/^\+\+ Incoming Requests \+\+/ { s = 1; next } /^\+\+/ { s = 0 } s && $2 == "UPDATE" { n = $1 } END { print n + 0 }' "$STATS"
}

mean() { # mean seconds of command $2 in hyperfine CSV $1
  awk -F, -v c="$2" '$1 == c { print $2 }' "$1"
}

printf '| owners | zones | danectl publish | floor: nsupdate, 1 message per zone | nsupdate per owner | danectl / floor | per owner / floor | UPDATEs (danectl, floor) | rerun UPDATEs |\n' > "$t/table.md"
printf '|---|---|---|---|---|---|---|---|---|\n' >> "$t/table.md"

for z in $zones; do
  for n in $sizes; do
    d="$t/lab-$n-$z"
    mkdir -p "$d"
    DANEHOOK_BENCH_LAB_DIR=$d DANEHOOK_BENCH_OWNERS=$n DANEHOOK_BENCH_ZONES=$z CI=true \
      "$t/bindlab.test" -test.run '^TestServeBenchLab$' -test.timeout 0 -test.count 1 >"$d/lab.log" 2>&1 &
    lab_pid=$! lab_dir=$d
    i=0
    until [ -e "$d/ready" ]; do
      kill -0 "$lab_pid" 2>/dev/null || { cat "$d/lab.log" >&2; echo "bench-dnsupdate: the lab did not start" >&2; exit 1; }
      i=$((i + 1)); [ $i -lt 1200 ] || { echo "bench-dnsupdate: the lab took over 2 minutes to start" >&2; exit 1; }
      sleep 0.1
    done
    . "$d/lab.env"
    reset="nsupdate -k $KEY_FILE $d/reset.txt && rm -rf $d/state"
    case $n in
      10|100) runs=10 ;; 1000) runs=5 ;; *) runs=3 ;;
    esac
    per_runs=3; [ "$n" -lt 1000 ] || per_runs=1
    echo "== $n owners in $z zone(s)" >&2
    hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$reset" --export-csv "$d/fast.csv" \
      -n danectl "$t/danectl publish --config $d/danehook.toml >/dev/null" \
      -n floor "nsupdate -k $KEY_FILE $d/floor.txt" >&2
    if [ "${PER_OWNER:-1}" != 0 ]; then
      hyperfine --style basic --runs "$per_runs" --prepare "$reset" --export-csv "$d/slow.csv" \
        -n per-owner "for f in $d/owners/*.txt; do nsupdate -k $KEY_FILE \$f || exit 1; done" >&2
    else
      printf 'command,mean\nper-owner,0\n' > "$d/slow.csv"
    fi

    # Messages: one publish and one floor from empty, then a rerun.
    sh -c "$reset"; u0=$(updates)
    "$t/danectl" publish --config "$d/danehook.toml" >"$d/publish.out"
    u1=$(updates)
    "$t/danectl" publish --config "$d/danehook.toml" >/dev/null
    u2=$(updates)
    sh -c "$reset"; u3=$(updates)
    nsupdate -k "$KEY_FILE" "$d/floor.txt"
    u4=$(updates)
    grep 'UPDATE message' "$d/publish.out" | sort | uniq -c | sed 's/^/    /' >&2
    if [ $((u2 - u1)) -ne 0 ]; then
      echo "bench-dnsupdate: the rerun of danectl publish sent $((u2 - u1)) UPDATEs, want 0" >&2; exit 1
    fi

    touch "$d/stop"; wait "$lab_pid" || true; lab_pid=

    dm=$(mean "$d/fast.csv" danectl); fm=$(mean "$d/fast.csv" floor); pm=$(mean "$d/slow.csv" per-owner)
    awk -v n="$n" -v z="$z" -v d="$dm" -v f="$fm" -v p="$pm" -v ud=$((u1 - u0)) -v uf=$((u4 - u3)) -v ur=$((u2 - u1)) 'BEGIN {
      pc = p > 0 ? sprintf("%.2f s", p) : "-"; pr = p > 0 ? sprintf("%.0f×", p / f) : "-"
      printf "| %d | %d | %.3f s | %.3f s | %s | %.2f× | %s | %d, %d | %d |\n", n, z, d, f, pc, d / f, pr, ud, uf, ur
    }' >> "$t/table.md"
  done
done

echo >&2
echo "Publishing N TLSA owners, BIND 9 primary + secondary on loopback, $(nproc) cores, $(date -u +%Y-%m-%d):"
echo
cat "$t/table.md"
