#!/usr/bin/env bash
# Builds danehook's Debian and RPM packages into dist/:
#
#   scripts/package.sh                 .deb and .rpm for amd64 and arm64
#   ARCHES=amd64 FORMATS=deb scripts/package.sh    only what is named
#
# For each architecture it builds danectl, dane-prerenew, dane-deploy and
# dane-reload (CGO_ENABLED=0, -trimpath, stripped, no build id or VCS stamp)
# into dist/build/linux_<arch>/, generates the man pages and completions
# from the binaries for this machine (scripts/gen-docs.sh), and runs nfpm
# (github.com/goreleaser/nfpm/v2 v2.45.2, installed from the Go module proxy
# into a temporary GOBIN) with nfpm.yaml. Output:
#
#   dist/danehook_<version>-1_<arch>.deb
#   dist/danehook-<version>-1.<rpm arch>.rpm
#
# DANEHOOK_DIST names another output directory (scripts/pkgtest uses one).
# VERSION defaults to the exact git tag (v dropped) or 0.0.0-git<date>.<commit>
# (a pre-release: a .deb shows 0.0.0~git…); SOURCE_DATE_EPOCH defaults to the
# commit time, so two runs on one commit give identical packages.
# DANEHOOK_MAINTAINER sets the Maintainer/Packager field.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm
NFPM_VERSION=v2.45.2
BINARIES=(danectl dane-prerenew dane-deploy dane-reload)
ARCHES=${ARCHES:-amd64 arm64}
FORMATS=${FORMATS:-deb rpm}
DIST=${DANEHOOK_DIST:-dist}

log() { printf 'package: %s\n' "$*" >&2; }

if [ -z "${VERSION:-}" ]; then
  if tag=$(git describe --tags --exact-match 2>/dev/null); then
    VERSION=${tag#v}
  elif sha=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    VERSION=0.0.0-git$(git show -s --format=%cd --date=format:%Y%m%d HEAD).$sha
  else
    VERSION=0.0.0-dev
  fi
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git show -s --format=%ct HEAD 2>/dev/null || date +%s)
fi
export VERSION SOURCE_DATE_EPOCH
export DANEHOOK_DIST=$DIST
export DANEHOOK_MAINTAINER=${DANEHOOK_MAINTAINER:-danehook maintainers <packaging@danehook.invalid>}
export GOTOOLCHAIN=local CGO_ENABLED=0

start=$(date +%s)
mkdir -p "$DIST"

# nfpm, pinned, from the module proxy; nothing else is downloaded.
gobin=$(mktemp -d)
trap 'rm -rf "$gobin"' EXIT
log "installing nfpm $NFPM_VERSION"
GOBIN=$gobin GOFLAGS=-buildvcs=false go install "$NFPM_MODULE@$NFPM_VERSION"
nfpm=$gobin/nfpm

build() { # build GOARCH: the binaries into dist/build/linux_GOARCH/
  local out=$DIST/build/linux_$1
  rm -rf "$out"
  mkdir -p "$out"
  # --version prints VERSION and the commit (-buildvcs=false records none).
  local x=github.com/danehook/danehook/cmd/internal/cliapp
  local commit
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  GOOS=linux GOARCH=$1 go build -trimpath -buildvcs=false \
    -ldflags="-s -w -buildid= -X $x.Version=$VERSION -X $x.Commit=$commit" \
    -o "$out/" "${BINARIES[@]/#/./cmd/}"
}

# Documentation comes from binaries that run here.
host=$(go env GOARCH)
log "building for linux/$host (and generating man pages and completions)"
build "$host"
scripts/gen-docs.sh "$DIST/build/linux_$host" "$DIST/docs"

# The Debian changelog every .deb must carry (Debian Policy 12.7): one entry
# for this build, with the version as nfpm writes it (a semver pre-release
# "-x" becomes "~x"; release 1).
debversion=${VERSION/-/\~}-1
{
  printf 'danehook (%s) unstable; urgency=medium\n\n' "$debversion"
  printf '  * Built from %s by scripts/package.sh.\n\n' "$(git rev-parse HEAD 2>/dev/null || echo "version $VERSION")"
  printf ' -- %s  %s\n' "$DANEHOOK_MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$DIST/docs/changelog.Debian.gz"

built=()
for arch in $ARCHES; do
  if [ "$arch" != "$host" ]; then
    log "building for linux/$arch"
    build "$arch"
  fi
  for format in $FORMATS; do
    case $format/$arch in
      deb/*) target=$DIST/danehook_${debversion}_$arch.deb ;;
      rpm/amd64) target=$DIST/danehook-$debversion.x86_64.rpm ;;
      rpm/arm64) target=$DIST/danehook-$debversion.aarch64.rpm ;;
      *) log "error: no file name for $format on $arch"; exit 2 ;;
    esac
    GOARCH=$arch "$nfpm" package --config nfpm.yaml --packager "$format" --target "$target" >&2
    built+=("$target")
  done
done

log "version $VERSION, $(( $(date +%s) - start )) s:"
for f in "${built[@]}"; do
  printf '  %s  %s bytes\n' "$f" "$(stat -c %s "$f")" >&2
done
