#!/bin/sh
# bench-hooks.sh: what danehook's hooks cost on a same-key renewal, next to
# the deploy hook an operator would otherwise write by hand — side by side
# with hyperfine, against a real BIND primary + secondary and a real Postfix
# on loopback (started by TestBenchHooksSetup in scripts/e2e):
#
#   danehook  dane-deploy then dane-reload with certbot's variables: key and
#             leaf checked, desired RRset computed and compared with the
#             primary (no DNS change for the same key), chain file written
#             atomically, postfix check, postfix reload, STARTTLS handshake
#             verified against the records of every authoritative server
#   shell     openssl SPKI digest, nsupdate delete + add of the RRset, cp of
#             key + chain into the chain file, postfix reload — no checks
#
# Two rounds. Same-key renewal: before each timed run (hyperfine --prepare,
# not timed) a new leaf is issued for the same key, as certbot's renew with
# reuse_key does; danehook installs it at once (the record is aged), checks,
# reloads and verifies. New-key renewal: before each run a new key and leaf
# (renew-newkey); danehook publishes the new key's record beside the served
# one and records a pending switch (nothing is aged yet), the shell swaps
# the record and the chain at once (what breaks mail for cached RRsets).
# Nothing waits on purpose in either command.
#
# Usage: scripts/bench-hooks.sh [RUNS]          (default 20 runs per command)
# Needs: go, hyperfine, openssl, nsupdate, named, postfix; root.
#
# The test calls this script back for the three commands hyperfine times:
#   bench-hooks.sh renew|renew-newkey|danehook|danehook-nowait|shell ENVFILE
set -eu

case "${1:-}" in
renew)
  . "$2"
  openssl x509 -req -in "$CSR" -CA "$CA" -CAkey "$CAKEY" -days 90 \
    -set_serial "0x$(openssl rand -hex 8)" -out "$LIVE/cert.pem" 2>/dev/null
  cat "$LIVE/cert.pem" "$LIVE/chain.pem" >"$LIVE/fullchain.pem"
  exit 0
  ;;
renew-newkey)
  # A renewal with a new key (rotation, or reuse_key off): the key and the
  # leaf change; the record of the new key is not published yet.
  . "$2"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$LIVE/privkey.pem" 2>/dev/null
  openssl req -new -key "$LIVE/privkey.pem" -subj "/CN=$HOST" -out "$LIVE/new.csr" 2>/dev/null
  openssl x509 -req -in "$LIVE/new.csr" -CA "$CA" -CAkey "$CAKEY" -days 90 \
    -set_serial "0x$(openssl rand -hex 8)" -out "$LIVE/cert.pem" 2>/dev/null
  cat "$LIVE/cert.pem" "$LIVE/chain.pem" >"$LIVE/fullchain.pem"
  # Each timed run publishes its new key beside the served one and leaves
  # the switch pending, so a round of 20 would reach the 12-record cap at
  # the owner (danehook then refuses the addition, exit 2). Before each
  # run the owner is set back to the served chain's record alone (danehook
  # observes that, and forgets the records gone), untimed.
  served=$(openssl x509 -in "$CHAIN" -noout -pubkey |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  printf 'server %s %s\nzone %s\nupdate delete %s TLSA\nupdate add %s %s TLSA 3 1 1 %s\nsend\n' \
    "$DNS_IP" "$DNS_PORT" "$ZONE" "$OWNER" "$OWNER" "$TTL" "$served" | nsupdate -k "$KEYFILE"
  exit 0
  ;;
danehook)
  . "$2"
  export DANEHOOK_CONFIG RENEWED_LINEAGE="$LIVE" RENEWED_DOMAINS="$HOST"
  "$BIN/dane-deploy" 2>/dev/null
  "$BIN/dane-reload" 2>/dev/null
  exit 0
  ;;
danehook-nowait)
  # The same hooks with [schedule] publish_wait = "0s": no watch of the
  # secondaries after the UPDATE (what issue 15's floor costs a hook).
  . "$2"
  export DANEHOOK_CONFIG="$CONFIG_NOWAIT" RENEWED_LINEAGE="$LIVE" RENEWED_DOMAINS="$HOST"
  "$BIN/dane-deploy" >/dev/null 2>&1
  "$BIN/dane-reload" >/dev/null 2>&1
  exit 0
  ;;
shell)
  . "$2"
  spki=$(openssl x509 -in "$LIVE/cert.pem" -noout -pubkey |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  printf 'server %s %s\nzone %s\nupdate delete %s TLSA\nupdate add %s %s TLSA 3 1 1 %s\nsend\n' \
    "$DNS_IP" "$DNS_PORT" "$ZONE" "$OWNER" "$OWNER" "$TTL" "$spki" | nsupdate -k "$KEYFILE"
  cat "$LIVE/privkey.pem" "$LIVE/fullchain.pem" >"$CHAIN.new"
  chmod 600 "$CHAIN.new"
  mv "$CHAIN.new" "$CHAIN"
  postfix -c "$PFDIR" reload 2>/dev/null
  exit 0
  ;;
esac

for c in go hyperfine openssl nsupdate named postfix; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench-hooks: $c is not on PATH; run scripts/install-deps.sh" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
DANEHOOK_BENCH=1 DANEHOOK_BENCH_RUNS=${1:-20} exec go test -count=1 -timeout 20m \
  -run '^TestBenchHooksSetup$' -v ./scripts/e2e
