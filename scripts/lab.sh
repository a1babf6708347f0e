#!/usr/bin/env bash
# danehook's lab, the README's first command. On a fresh Debian 12 machine,
# as root, it installs what the lab needs (scripts/install-deps.sh), then
# starts — on loopback only, each in its own temporary directory — a Pebble
# ACME server, a BIND primary (127.0.0.1) and secondary (127.0.0.2) with TSIG,
# and a Postfix instance serving danehook's chain file, and walks through
# the main job with the real certbot and danehook's hooks:
#
#   1. first issuance: the new key's TLSA record published at both name
#      servers beside the record of the self-signed chain Postfix started
#      with; once aged (2 x TTL after the last server serves it) 'danectl
#      tick' installs the chain, verifies it by STARTTLS and removes the
#      old record;
#   2. renewal with a new key: the same, with the previous ACME key.
#
# The zone is DNSSEC-signed and every step runs under the judge: Postfix's
# own DANE client (posttls-finger -l dane-only) asking a validating, caching
# unbound on its own loopback address, every 0.5 s. The output ends with the
# judge's verdict lines ("Verified TLS connection established ...").
#
# It prints what happened as it goes and stops every service when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "lab: building danehook and starting Pebble, BIND x2 and Postfix on loopback..."
set +e
go test -count=1 -timeout 10m -run '^TestLabWalkthrough$' -v ./scripts/e2e 2>&1 |
  grep -v -E '^(=== (RUN|PAUSE|CONT)|\s*--- PASS|PASS$|ok  |\s+[a-z0-9_]+_test\.go:[0-9]+: (.* took [0-9.]+ s|invariant sampler: [0-9]+ samples.*|judge: [0-9]+ samples.*)$)'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "lab: FAILED (exit $status); the test output above says where" >&2
  exit "$status"
fi
echo "lab: done; every service was stopped"
