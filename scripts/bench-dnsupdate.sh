#!/bin/sh
# bench-dnsupdate.sh: publish one TLSA 3 1 1 record at each of N owners in
# 1 and in 10 zones on a real BIND primary with a secondary (internal/bindlab,
# kept running by TestServeBenchLab), timed side by side by hyperfine, from
# the same empty start each run (empty zones and state, the secondary caught
# up with the reset):
#
#   danectl      `danectl publish` of a configuration with those owners
#                (lineages of up to 100 hosts), as shipped: it reads every
#                owner once at the primary (unsigned, shared with the
#                propagation check; one signed SOA query per zone checks the
#                view), observes both authoritative servers, sends the
#                additions in as few UPDATE messages as fit, then watches
#                until the secondary serves them ([schedule] publish_wait,
#                default 20 s: it returns once the secondary caught up)
#   danectl-nowait  the same with publish_wait = "0s": no watch. Both
#                read each zone by one AXFR from each server (the lab's
#                primary and secondary allow the key to transfer; with
#                SECONDARY_XFR=0 the secondary refuses and is asked per
#                owner) once 64 owners of a zone are read; the primary
#                too, the configuration naming its zones (zone = "…" for
#                one, zones = […] for several, as the floor's script names
#                them)
#   discovery    danectl-nowait without zone / zones: each owner is read
#                directly at the primary, whose answer places it in its
#                zone (zone discovery); the secondary by transfer
#   direct       danectl-nowait with zone_transfers = false: a direct TLSA
#                query per owner at each server (the read path of a server
#                that allows no transfer)
#   floor        one `nsupdate -k` process sending each zone's records in as
#                few messages as it can (850 records per message: nsupdate
#                9.18 does not compress names and fails at about 870) and
#                reading nothing: the least a tool can do
#   floor+xfr    the floor, then polling the secondary (dig, every 10 ms)
#                until it serves each zone's new serial: what danectl's
#                watch waits for
#   libdns       `danectl publish` through type = "libdns", name = "rfc2136"
#                (github.com/libdns/rfc2136, publish_wait = "0s"): compare
#                with danectl-nowait
#   interleaved  danectl-nowait and floor again, alternating, ROUNDS times
#                (default 10): the ratio of their mean times, measured side
#                by side in time (hyperfine times each command's runs in a
#                row, and a VM's neighbours and BIND's growing journal move
#                the later ones)
#   per-owner    one `nsupdate -k` process per owner, as hand-written hook
#                scripts do (timed once from 1,000 owners on)
#
# then checks on the server's own counters (rndc stats) that a second
# `danectl publish` sends 0 UPDATEs, and prints the table of mean wall times
# (± standard deviation over the runs) and ratios.
#
# Usage: [SECONDARY_XFR=0] [ROUNDS=10] scripts/bench-dnsupdate.sh [-z "ZONES"] [-r RUNS] [-P] [N ...]
#   N ...       owner counts (default: 10 100 1000 5000)
#   -z ZONES    zone counts, quoted list (default "1 10"; env ZONES)
#   -r RUNS     hyperfine runs of the fast commands (default 10 up to 100
#               owners, 5 at 1,000, 3 beyond)
#   -P          skip the per-owner runs (their column reads "-"; env
#               PER_OWNER=0)
# e.g. scripts/bench-dnsupdate.sh -z 1 -P 1000 5000 (a quick look).
#
# Needs: go, named, tsig-keygen, rndc, nsupdate, dig, hyperfine; root
# (127.0.0.2 on lo). The per-owner runs dominate: about 8 ms per owner on 2
# cores, so 5,000 owners take about 3 minutes per run (timed once).
# Not run by CI (scripts/test.sh runs the Go benchmarks once with -benchtime=1x).
set -eu

zones=${ZONES:-1 10}
runs_opt=
rounds=${ROUNDS:-10}
per_owner=${PER_OWNER:-1}
while getopts z:r:P opt; do
  case $opt in
    z) zones=$OPTARG ;;
    r) runs_opt=$OPTARG ;;
    P) per_owner=0 ;;
    *) echo "usage: $0 [-z \"ZONES\"] [-r RUNS] [-P] [N ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
sizes=${*:-10 100 1000 5000}
for v in $sizes $zones $runs_opt; do
  case $v in ''|*[!0-9]*|0) echo "bench-dnsupdate: $v is not a positive whole number (owners, zones, runs)" >&2; exit 2 ;; esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
for c in go named tsig-keygen rndc nsupdate dig hyperfine; do
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

mean() { # "mean stddev" seconds of command $2 in hyperfine CSV $1
  awk -F, -v c="$2" '$1 == c { print $2, $3 }' "$1"
}

# The floor+xfr poller: wait until the secondary serves each zone with the
# primary's serial.
cat > "$t/caught-up.sh" <<'POLL'
#!/bin/sh
# caught-up.sh PRIMARY_IP SECONDARY_IP PORT ZONE...
p=$1 s=$2 port=$3; shift 3
for z in "$@"; do
  want=$(dig +short +tcp -p "$port" @"$p" "$z" SOA | awk '{ print $3 }')
  until [ "$(dig +short +tcp -p "$port" @"$s" "$z" SOA | awk '{ print $3 }')" = "$want" ]; do sleep 0.01; done
done
POLL
chmod +x "$t/caught-up.sh"

printf '| owners | zones | danectl publish | danectl, publish_wait 0s | zones discovered, 0s | direct reads, 0s | floor: nsupdate, fewest messages | floor + secondary caught up | per owner | libdns/rfc2136, 0s | danectl / (floor + caught up) | danectl 0s / floor | interleaved: danectl 0s / floor (means) | discovered / floor | direct / floor | libdns / floor | per owner / floor | UPDATEs (danectl, floor, libdns) | rerun UPDATEs |\n' > "$t/table.md"
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n' >> "$t/table.md"

for z in $zones; do
  for n in $sizes; do
    d="$t/lab-$n-$z"
    mkdir -p "$d"
    DANEHOOK_BENCH_LAB_DIR=$d DANEHOOK_BENCH_OWNERS=$n DANEHOOK_BENCH_ZONES=$z DANEHOOK_BENCH_SECONDARY_XFR=${SECONDARY_XFR:-1} CI=true \
      "$t/bindlab.test" -test.run '^TestServeBenchLab$' -test.timeout 0 -test.count 1 >"$d/lab.log" 2>&1 &
    lab_pid=$! lab_dir=$d
    i=0
    until [ -e "$d/ready" ]; do
      kill -0 "$lab_pid" 2>/dev/null || { cat "$d/lab.log" >&2; echo "bench-dnsupdate: the lab did not start" >&2; exit 1; }
      i=$((i + 1)); [ $i -lt 1200 ] || { echo "bench-dnsupdate: the lab took over 2 minutes to start" >&2; exit 1; }
      sleep 0.1
    done
    . "$d/lab.env"
    zlist=$(i=0; while [ $i -lt "$z" ]; do printf 'z%d.bench.test. ' $i; i=$((i + 1)); done)
    # Each timed run starts from empty zones and state with the secondary
    # caught up: timed right after the reset, a run competed with the
    # secondary's transfer of it (the reset of 5,000 records takes it
    # 0.1-0.3 s), which the floor mostly did not meet.
    reset="nsupdate -k $KEY_FILE $d/reset.txt && rm -rf $d/state && $t/caught-up.sh ${PRIMARY%:*} ${SECONDARY%:*} $PORT $zlist"
    if [ -n "$runs_opt" ]; then runs=$runs_opt; elif [ "$n" -le 100 ]; then runs=10; elif [ "$n" -le 1000 ]; then runs=5; else runs=3; fi
    per_runs=3; [ "$n" -lt 1000 ] || per_runs=1
    cp "$d/danehook.toml" "$d/nowait.toml"
    printf '[schedule]\npublish_wait = "0s"\n' >> "$d/nowait.toml"
    sed 's/^type = "rfc2136"$/type = "libdns"\nname = "rfc2136"/' "$d/nowait.toml" > "$d/libdns.toml"
    sed 's/^type = "rfc2136"$/type = "rfc2136"\nzone_transfers = false/' "$d/nowait.toml" > "$d/direct.toml"
    grep -v '^zones* = ' "$d/nowait.toml" > "$d/discovery.toml"
    echo "== $n owners in $z zone(s)" >&2
    hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$reset" --export-csv "$d/fast.csv" \
      -n danectl "$t/danectl publish --config $d/danehook.toml >/dev/null" \
      -n danectl-nowait "$t/danectl publish --config $d/nowait.toml >/dev/null" \
      -n discovery "$t/danectl publish --config $d/discovery.toml >/dev/null" \
      -n direct "$t/danectl publish --config $d/direct.toml >/dev/null" \
      -n floor "nsupdate -k $KEY_FILE $d/floor.txt" \
      -n floor+xfr "nsupdate -k $KEY_FILE $d/floor.txt && $t/caught-up.sh ${PRIMARY%:*} ${SECONDARY%:*} $PORT $zlist" >&2
    sh -c "$reset"
    if "$t/danectl" publish --config "$d/libdns.toml" >/dev/null 2>"$d/libdns.err"; then
      hyperfine --style basic --warmup 1 --runs "$runs" --prepare "$reset" --export-csv "$d/libdns.csv" \
        -n libdns "$t/danectl publish --config $d/libdns.toml >/dev/null" >&2
    else
      echo "bench-dnsupdate: the libdns/rfc2136 publish of $n owners in $z zone(s) fails: $(tail -1 "$d/libdns.err" | cut -c1-160) … $(tail -1 "$d/libdns.err" | rev | cut -c1-80 | rev)" >&2
      printf 'command,mean\nlibdns,0\n' > "$d/libdns.csv"
    fi
    # Interleaved: ROUNDS rounds of (reset, danectl-nowait, reset, floor),
    # so that both meet the same state of the VM and of BIND (its journal
    # grows with every reset; neighbours come and go): the ratio of the
    # sums is the figure least moved by drift.
    dsum=0 fsum=0 k=0
    while [ $k -lt "$rounds" ]; do
      sh -c "$reset"; t0=$(date +%s%N)
      "$t/danectl" publish --config "$d/nowait.toml" >/dev/null
      t1=$(date +%s%N); sh -c "$reset"; t2=$(date +%s%N)
      nsupdate -k "$KEY_FILE" "$d/floor.txt"
      t3=$(date +%s%N)
      dsum=$((dsum + t1 - t0)) fsum=$((fsum + t3 - t2)) k=$((k + 1))
    done
    if [ "$per_owner" != 0 ]; then
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
    sh -c "$reset"; u5=$(updates)
    "$t/danectl" publish --config "$d/libdns.toml" >/dev/null 2>&1 || true
    u6=$(updates)
    grep 'UPDATE message' "$d/publish.out" | sort | uniq -c | sed 's/^/    /' >&2
    if [ $((u2 - u1)) -ne 0 ]; then
      echo "bench-dnsupdate: the rerun of danectl publish sent $((u2 - u1)) UPDATEs, want 0" >&2; exit 1
    fi

    touch "$d/stop"; wait "$lab_pid" || true; lab_pid=

    awk -v n="$n" -v z="$z" -v ud=$((u1 - u0)) -v uf=$((u4 - u3)) -v ul=$((u6 - u5)) -v ur=$((u2 - u1)) \
      -v d="$(mean "$d/fast.csv" danectl)" -v w="$(mean "$d/fast.csv" danectl-nowait)" -v v="$(mean "$d/fast.csv" discovery)" -v r="$(mean "$d/fast.csv" direct)" -v l="$(mean "$d/libdns.csv" libdns)" \
      -v f="$(mean "$d/fast.csv" floor)" -v x="$(mean "$d/fast.csv" floor+xfr)" -v p="$(mean "$d/slow.csv" per-owner)" -v id="$dsum" -v fl="$fsum" -v ir="$rounds" 'BEGIN {
      split(d, D, " "); split(w, W, " "); split(v, V, " "); split(r, R, " "); split(l, L, " "); split(f, F, " "); split(x, X, " "); split(p, P, " ")
      pc = P[1] > 0 ? sprintf("%.2f s", P[1]) : "-"; pr = P[1] > 0 ? sprintf("%.0f×", P[1] / F[1]) : "-"
      lc = L[1] > 0 ? sprintf("%.3f ± %.3f s", L[1], L[2]) : "fails"; lr = L[1] > 0 ? sprintf("%.2f×", L[1] / F[1]) : "-"
      printf "| %d | %d | %.3f ± %.3f s | %.3f ± %.3f s | %.3f ± %.3f s | %.3f ± %.3f s | %.3f ± %.3f s | %.3f ± %.3f s | %s | %s | %.2f× | %.2f× | %.3f / %.3f s = %.2f× | %.2f× | %.2f× | %s | %s | %d, %d, %d | %d |\n",
        n, z, D[1], D[2], W[1], W[2], V[1], V[2], R[1], R[2], F[1], F[2], X[1], X[2], pc, lc, D[1] / X[1], W[1] / F[1], id / ir / 1e9, fl / ir / 1e9, id / fl, V[1] / F[1], R[1] / F[1], lr, pr, ud, uf, ul, ur
    }' >> "$t/table.md"
  done
done

echo >&2
echo "Publishing N TLSA owners, BIND 9 primary + secondary on loopback, $(nproc) cores, $(date -u +%Y-%m-%d):"
echo
cat "$t/table.md"
