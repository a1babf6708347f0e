#!/usr/bin/env bash
# Generates danehook's man pages and shell completions from the binaries
# themselves, so they never drift from the real flags:
#
#   scripts/gen-docs.sh [BIN_DIR [OUT_DIR]]
#
# BIN_DIR holds danectl, dane-prerenew, dane-deploy and dane-reload built for
# this machine (default: built now into a temporary directory); OUT_DIR
# (default dist/docs) receives
#
#   man/NAME.1.gz                 NAME --generate-man, gzip -9n
#   completions/bash/NAME         NAME --generate-completion bash
#   completions/zsh/_NAME         NAME --generate-completion zsh
#   man/danehook.toml.5.gz        packaging/man/danehook.toml.5, gzip -9n
#
# The --generate-* flags are hidden flags every danehook binary has
# (cmd/internal/cliapp/docs.go). Output is reproducible: gzip -n stores no
# name or time.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARIES=(danectl dane-prerenew dane-deploy dane-reload)
bin=${1:-}
out=${2:-dist/docs}

if [ -z "$bin" ]; then
  bin=$(mktemp -d)
  trap 'rm -rf "$bin"' EXIT
  CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$bin/" "${BINARIES[@]/#/./cmd/}"
fi

rm -rf "$out"
mkdir -p "$out/man" "$out/completions/bash" "$out/completions/zsh"
for b in "${BINARIES[@]}"; do
  exe=$bin/$b
  [ -x "$exe" ] || { echo "gen-docs: $exe is missing or not executable" >&2; exit 2; }
  "$exe" --generate-man | gzip -9n > "$out/man/$b.1.gz"
  "$exe" --generate-completion bash > "$out/completions/bash/$b"
  "$exe" --generate-completion zsh > "$out/completions/zsh/_$b"
done
# danehook.toml(5) is written by hand (cmd/internal/cliapp's
# TestConfigManPage checks that it documents every setting).
gzip -9n < packaging/man/danehook.toml.5 > "$out/man/danehook.toml.5.gz"
echo "gen-docs: wrote man pages and bash/zsh completions of ${BINARIES[*]} to $out" >&2
