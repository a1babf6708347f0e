#!/bin/sh
# lego v4: issue ("run") or renew ("renew") with danehook's hook. lego v4 has
# no pre or post hook: dane-deploy reloads and verifies Postfix by itself
# when it sees lego v4's variables. Usage: lego-v4.sh run|renew [flags]
export DANEHOOK_CONFIG=${DANEHOOK_CONFIG:-/etc/danehook/danehook.toml}
cmd=${1:-renew}; shift || true
hook=--renew-hook
[ "$cmd" = run ] && hook=--run-hook
exec lego --email "${LEGO_EMAIL:?set LEGO_EMAIL}" --accept-tos \
  --domains "${DOMAIN:?set DOMAIN}" --path /var/lib/lego --http --key-type ec256 \
  "$cmd" $( [ "$cmd" = renew ] && echo --reuse-key ) "$hook" dane-deploy "$@"
