#!/bin/sh
# bench-tlsa.sh: compare "danectl tlsa" with "postfix tls output-server-tlsa"
# for an RSA-2048 and an ECDSA P-256 key, with hyperfine.
#
# Usage: scripts/bench-tlsa.sh [OUT.md]     (markdown to OUT.md; default stdout)
#
# Needs: go, openssl, postfix, hyperfine. postfix-tls-script reads openssl_path
# from the *default* configuration directory, so /etc/postfix/main.cf must
# exist; the script creates an empty one only when it is missing (and says
# so). Postfix itself gets a throw-away configuration directory.
set -eu

out=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
for c in go openssl postfix hyperfine; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench-tlsa: $c is not on PATH; run scripts/install-deps.sh" >&2; exit 2; }
done

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

(cd "$root" && go build -o "$t/danectl" ./cmd/danectl)
openssl genrsa -traditional -out "$t/rsa.pem" 2048 2>/dev/null
openssl ecparam -param_enc named_curve -genkey -name prime256v1 -out "$t/ecdsa.pem"
chmod 600 "$t/rsa.pem" "$t/ecdsa.pem"

# A minimal Postfix configuration directory: postfix -c DIR wants main.cf and
# master.cf there.
mkdir "$t/postfix"
printf 'compatibility_level = 3.6\nmyhostname = mail.example.test\n' > "$t/postfix/main.cf"
: > "$t/postfix/master.cf"
if [ ! -e /etc/postfix/main.cf ]; then
  echo "bench-tlsa: creating an empty /etc/postfix/main.cf (postfix tls needs it)" >&2
  : > /etc/postfix/main.cf
fi

# Both tools must agree before they are timed.
for k in rsa ecdsa; do
  a=$("$t/danectl" tlsa --host mail.example.test "$t/$k.pem" | grep -v '^;')
  b=$(postfix -c "$t/postfix" tls output-server-tlsa -h mail.example.test "$t/$k.pem" | grep -v '^;')
  if [ "$a" != "$b" ]; then
    printf 'bench-tlsa: outputs differ for %s:\n%s\n%s\n' "$k" "$a" "$b" >&2
    exit 1
  fi
done

set -- --warmup 3 -N
if [ -n "$out" ]; then
  set -- "$@" --export-markdown "$out"
else
  set -- "$@" --export-markdown "$t/bench.md"
fi
hyperfine "$@" \
  -n "danectl tlsa (RSA-2048)" "$t/danectl tlsa --host mail.example.test $t/rsa.pem" \
  -n "postfix tls output-server-tlsa (RSA-2048)" "postfix -c $t/postfix tls output-server-tlsa -h mail.example.test $t/rsa.pem" \
  -n "danectl tlsa (ECDSA P-256)" "$t/danectl tlsa --host mail.example.test $t/ecdsa.pem" \
  -n "postfix tls output-server-tlsa (ECDSA P-256)" "postfix -c $t/postfix tls output-server-tlsa -h mail.example.test $t/ecdsa.pem" >&2
if [ -z "$out" ]; then
  cat "$t/bench.md"
fi
