#!/usr/bin/env bash
# Builds the Debian package: target/debian/tickwatch_VERSION-1_ARCH.deb.
#
#   scripts/build-deb.sh [--no-build]
#
# Runs `cargo build --release` (the binary and the shipped plugins; skipped
# with --no-build), writes the man page and the shell completions the
# package ships from that binary into target/release/pkg/, then `cargo deb
# -p tickwatch-engine --no-build --no-strip` (`cargo deb` alone would build
# only the engine's package; the release profile already drops debug info
# and keeps symbols for backtraces). Needs cargo-deb: `cargo install
# cargo-deb --version 3.8.0 --locked`. scripts/check-deb.sh checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
case "${1:-}" in
    --no-build) build=0 ;;
    "") ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac
if [ "$build" = 1 ]; then
    cargo build --release
fi
bin=target/release/tickwatch
[ -x "$bin" ] || { echo "build-deb.sh: $bin is missing; run without --no-build" >&2; exit 1; }

# Generated files the package lists as assets (engine/Cargo.toml).
out=target/release/pkg
rm -rf "$out"
mkdir -p "$out"
"$bin" man | gzip -9n >"$out/tickwatch.1.gz"
"$bin" completions bash >"$out/tickwatch.bash"
"$bin" completions zsh >"$out/_tickwatch"
"$bin" completions fish >"$out/tickwatch.fish"

rm -rf target/debian
cargo deb -p tickwatch-engine --no-build --no-strip
