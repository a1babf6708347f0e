#!/usr/bin/env bash
# Installs the ACME side of danehook's test lab into one tools directory,
# ${DANEHOOK_TOOLS:-/usr/local/lib/danehook-lab/bin}:
#
#   pebble, pebble-challtestsrv  github.com/letsencrypt/pebble/v2 v2.10.3
#   lego                         github.com/go-acme/lego/v5 v5.6.0 (-tags lego_dnslight)
#   lego4                        github.com/go-acme/lego/v4 v4.35.2
#
# certbot is a Debian package and is installed by install-deps.sh, not here.
#
# Neither lego can be installed with a plain `go install …@version` from the
# module proxy (LAB-NOTES §1.1 and "Correction"): v5's logger dependency
# gitlab.com/greyxor/slogor v1.7.1 and most DNS-provider SDKs are refused
# (403), and the proxy serves no version list for lego/v4. Each is built from
# a throw-away wrapper module that pins the version (and, for v5, replaces
# slogor with v1.7.0 and compiles in no DNS providers).
#
# Idempotent and fast when done: a tool whose installed binary already reports
# the wanted version is skipped. Binaries are built into a temporary file and
# renamed into place, so an interrupted build never leaves a half-written tool
# that would pass the version check. Exits non-zero naming every tool that
# failed, with the tail of the go command's output.
set -euo pipefail

TOOLS=${DANEHOOK_TOOLS:-/usr/local/lib/danehook-lab/bin}
PEBBLE_VERSION=v2.10.3
LEGO5_VERSION=v5.6.0
LEGO4_VERSION=v4.35.2
SLOGOR_VERSION=v1.7.0

log() { printf 'install-acme: %s\n' "$*" >&2; }

GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; }
if [ -z "$GO" ]; then
  log "error: no go command on PATH or at /usr/local/go/bin/go (Go >= 1.26 is needed)"
  exit 2
fi

mkdir -p "$TOOLS"
# One install at a time: two concurrent runs would race on the same binaries.
if command -v flock >/dev/null; then
  exec 9>"$TOOLS/.install-acme.lock"
  flock 9
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local  # never fetch another toolchain behind our back
export GOFLAGS="-buildvcs=false"

# module_version FILE MODULE prints the version of MODULE that the Go binary
# FILE was built from (main module or dependency), from its build info.
module_version() {
  "$GO" version -m "$1" 2>/dev/null |
    awk -v m="$2" '($1 == "mod" || $1 == "dep") && $2 == m { v = $3 } END { if (v != "") print v }'
}

# installed_ok NAME prints nothing and succeeds when $TOOLS/NAME is the wanted version.
installed_ok() {
  local bin="$TOOLS/$1" out
  [ -x "$bin" ] || return 1
  case $1 in
    pebble|pebble-challtestsrv)
      # Pebble has no -version flag; its build info names the module version.
      [ "$(module_version "$bin" github.com/letsencrypt/pebble/v2)" = "$PEBBLE_VERSION" ] ;;
    lego)
      out=$("$bin" --version 2>/dev/null) || return 1
      # "lego version v5.6.0+dev-release linux/amd64"
      [[ $out == *" ${LEGO5_VERSION}"[+\ ]* || $out == *" ${LEGO5_VERSION}" ]] ;;
    lego4)
      out=$("$bin" --version 2>/dev/null) || return 1
      [[ $out == *"${LEGO4_VERSION#v}"* ]] && [ "$(module_version "$bin" github.com/go-acme/lego/v4)" = "$LEGO4_VERSION" ] ;;
  esac
}

failed=()

# run_go TOOL LOGFILE CMD... runs a go command, reporting its failure.
run_go() {
  local tool=$1 logf=$2; shift 2
  if ! "$@" >"$logf" 2>&1; then
    log "FAILED: $tool; go said (last 20 lines):"
    tail -n 20 "$logf" | sed 's/^/    /' >&2
    failed+=("$tool")
    return 1
  fi
}

# --- pebble + pebble-challtestsrv -------------------------------------------
need=()
for t in pebble pebble-challtestsrv; do installed_ok "$t" || need+=("$t"); done
if [ ${#need[@]} -eq 0 ]; then
  log "pebble $PEBBLE_VERSION: already installed"
else
  log "pebble $PEBBLE_VERSION: building ${need[*]}"
  start=$SECONDS
  mkdir -p "$work/pebble-bin"
  pkgs=()
  for t in "${need[@]}"; do pkgs+=("github.com/letsencrypt/pebble/v2/cmd/$t@$PEBBLE_VERSION"); done
  if GOBIN="$work/pebble-bin" run_go pebble "$work/pebble.log" "$GO" install "${pkgs[@]}"; then
    for t in "${need[@]}"; do mv -f "$work/pebble-bin/$t" "$TOOLS/$t"; done
    log "pebble $PEBBLE_VERSION: installed ${need[*]} in $((SECONDS - start)) s"
  fi
fi

# --- lego v5 ----------------------------------------------------------------
if installed_ok lego; then
  log "lego $LEGO5_VERSION: already installed"
else
  log "lego $LEGO5_VERSION: building (wrapper module, slogor $SLOGOR_VERSION, -tags lego_dnslight)"
  start=$SECONDS
  d="$work/lego5"; mkdir -p "$d"
  cat >"$d/go.mod" <<EOF
module lab/legobuild

go 1.26

require github.com/go-acme/lego/v5 $LEGO5_VERSION

// slogor v1.7.1, which lego v5.6.0 requires, is refused by the module proxy.
replace gitlab.com/greyxor/slogor => gitlab.com/greyxor/slogor $SLOGOR_VERSION
EOF
  if (cd "$d" && run_go lego "$work/lego5.log" "$GO" build -mod=mod -tags lego_dnslight \
        -o "$TOOLS/.lego.tmp" github.com/go-acme/lego/v5); then
    mv -f "$TOOLS/.lego.tmp" "$TOOLS/lego"
    log "lego $LEGO5_VERSION: installed in $((SECONDS - start)) s"
  else
    failed+=(lego) # the subshell's failed+= is lost
  fi
fi

# --- lego v4 ----------------------------------------------------------------
if installed_ok lego4; then
  log "lego4 $LEGO4_VERSION: already installed"
else
  log "lego4 $LEGO4_VERSION: building (wrapper module; several minutes cold)"
  start=$SECONDS
  d="$work/lego4"; mkdir -p "$d"
  cat >"$d/go.mod" <<EOF
module lab/lego4

go 1.26

require github.com/go-acme/lego/v4 $LEGO4_VERSION
EOF
  if (cd "$d" && run_go lego4 "$work/lego4.log" "$GO" build -mod=mod \
        -o "$TOOLS/.lego4.tmp" github.com/go-acme/lego/v4/cmd/lego); then
    mv -f "$TOOLS/.lego4.tmp" "$TOOLS/lego4"
    log "lego4 $LEGO4_VERSION: installed in $((SECONDS - start)) s"
  else
    failed+=(lego4)
  fi
fi

rm -f "$TOOLS/.lego.tmp" "$TOOLS/.lego4.tmp"
if [ ${#failed[@]} -gt 0 ]; then
  log "error: failed to install: ${failed[*]}"
  exit 1
fi
log "ok: $TOOLS holds pebble pebble-challtestsrv lego lego4"
