#!/bin/sh
# lego v5: issue or renew with danehook's hooks. lego runs hooks without a
# shell and splits them on spaces, so pass the configuration through
# DANEHOOK_CONFIG rather than a --config flag. --reuse-key keeps the key that
# the TLSA 3 1 1 records pin (danehook also detects a changed key by SPKI).
export DANEHOOK_CONFIG=${DANEHOOK_CONFIG:-/etc/danehook/danehook.toml}
exec lego run --email "${LEGO_EMAIL:?set LEGO_EMAIL}" --accept-tos \
  --domains "${DOMAIN:?set DOMAIN}" --path /var/lib/lego --http --key-type EC256 \
  --reuse-key \
  --pre-hook dane-prerenew --deploy-hook dane-deploy --post-hook dane-reload "$@"
