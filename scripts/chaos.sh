#!/bin/sh
# Run danehook's randomized scenario runner (scripts/chaos, issue 11) locally:
# more seeds, or random seeds for a while, than CI's fixed list.
#
#   scripts/chaos.sh                      # the CI seed list
#   scripts/chaos.sh -seeds 20            # 20 random seeds
#   scripts/chaos.sh -duration 30m        # random seeds until 30 minutes have passed
#   scripts/chaos.sh -seed 314            # replay one seed
#   scripts/chaos.sh -seeds 8 -parallel 3 -steps 14
#
# Each sequence prints "chaos: seed N (...): PASS|FAIL ..."; the run ends
# with "chaos summary: ..." and exits non-zero when a sequence failed. The
# full output (with each failed seed's sequence and judge timeline) and the
# per-seed results (JSON lines) go to a new directory under /tmp unless
# -out names one. Needs the lab (scripts/install-deps.sh, run as root).
set -eu
cd "$(dirname "$0")/.."
seeds= duration= seed= parallel= steps= out=
while [ $# -gt 0 ]; do
	case $1 in
	-seeds) seeds=$2; shift 2 ;;
	-duration) duration=$2; shift 2 ;;
	-seed) seed=$2; shift 2 ;;
	-parallel) parallel=$2; shift 2 ;;
	-steps) steps=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "chaos.sh: unknown argument $1 (see -h)" >&2; exit 2 ;;
	esac
done
timeout=15m
if [ -n "$duration" ]; then
	timeout=0 # the runner stops starting sequences at the deadline
elif [ -n "$seeds" ]; then
	timeout=$((seeds * 4 + 10))m
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/danehook-chaos.XXXXXX)
mkdir -p "$out"
export CHAOS_RESULTS="$out/results.jsonl"
[ -n "$seeds" ] && export CHAOS_SEEDS="$seeds"
[ -n "$duration" ] && export CHAOS_DURATION="$duration"
[ -n "$seed" ] && export SEED="$seed"
[ -n "$parallel" ] && export CHAOS_PARALLEL="$parallel"
[ -n "$steps" ] && export CHAOS_STEPS="$steps"
echo "chaos.sh: output in $out"
go test -count=1 -v -timeout "$timeout" -run 'TestChaos$' ./scripts/chaos >"$out/output.log" 2>&1 || true
grep -E '^(chaos|FAIL|ok)' "$out/output.log" || true
echo "chaos.sh: full output (sequences and timelines of failed seeds) in $out/output.log"
grep -q '^chaos summary: .* 0 failures in 0 sequences' "$out/output.log"
