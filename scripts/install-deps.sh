#!/usr/bin/env bash
# Installs everything danehook's lab and tests need on a fresh Debian 12
# machine, as root: Debian packages (BIND, Postfix with posttls-finger,
# unbound, certbot, dehydrated, openssl, hyperfine, ldnsutils, util-linux's
# unshare; Knot DNS and PowerDNS (sqlite3 backend) for the RFC 2136 interop labs;
# lintian and rpm for the package test), the 127.0.0.2 loopback alias the
# BIND secondary listens on, the ACME lab tools (install-acme.sh) and
# staticcheck. Idempotent: what is
# already there is not installed again.
set -euo pipefail

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "error: run as root (it installs Debian packages and adds 127.0.0.2 to lo)"
  exit 2
fi

# The judge (internal/judgelab): unbound as the lab's validating resolver,
# posttls-finger (in postfix) as the DANE client, run in a private mount
# namespace (unshare from util-linux, mount) with ca-certificates' CApath.
PKGS=(bind9 bind9-utils bind9-dnsutils postfix unbound certbot openssl hyperfine ldnsutils
      dehydrated  # the dehydrated hook e2e (scripts/e2e): a shell ACME client with a hook script contract
      ca-certificates iproute2 util-linux mount
      lintian rpm   # scripts/pkgtest: lintian checks the .deb, rpm -qp reads the .rpm
      at procps     # pkg/schedule, scripts/e2e: at(1) jobs complete a switch at safe_at; pgrep finds atd
      # RFC 2136 interop (internal/knotlab, internal/pdnslab): Knot DNS and
      # PowerDNS with its sqlite3 backend (sqlite3 loads the schema); the
      # labs run their own instances on high loopback ports.
      knot knot-dnsutils pdns-server pdns-backend-sqlite3 sqlite3)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  # Daemons must not start on install: Debian's named listens on every
  # interface by default. The lab starts its own instances on loopback.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged knot and pdns services are not needed (the labs start their
# own on high loopback ports); where systemd runs them, stop them so they do
# not hold port 53. policy-rc.d kept them from starting on install.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now knot.service pdns.service >/dev/null 2>&1 || true
fi

# 'postfix tls' reads openssl_path from the default configuration directory,
# which Debian's "No configuration" install leaves without main.cf.
[ -e /etc/postfix/main.cf ] || touch /etc/postfix/main.cf

# The BIND secondary of the test lab listens on 127.0.0.2; named only binds
# addresses that are configured on an interface.
if ! ip -4 addr show dev lo | grep -q '127\.0\.0\.2/'; then
  log "adding 127.0.0.2/8 to lo"
  ip addr add 127.0.0.2/8 dev lo
fi


# ACME lab tools built from pinned Go modules: pebble, lego v5, lego v4.
"$(dirname "$0")/install-acme.sh"

# staticcheck, the linter scripts/test.sh runs after go vet, pinned and
# installed beside the lab tools (skipped when that version is there).
TOOLS=${DANEHOOK_TOOLS:-/usr/local/lib/danehook-lab/bin}
STATICCHECK_VERSION=v0.8.2
if [ "$(go version -m "$TOOLS/staticcheck" 2>/dev/null | awk '$1 == "mod" { print $3 }')" != "$STATICCHECK_VERSION" ]; then
  log "installing staticcheck $STATICCHECK_VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  GOBIN="$TOOLS" GOTOOLCHAIN=local GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
log "ok"
