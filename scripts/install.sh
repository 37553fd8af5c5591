#!/usr/bin/env sh
# Installs tickwatch from this clone: PREFIX/bin/tickwatch and the shipped
# detector plugins in PREFIX/lib/tickwatch/plugins (where an installed
# tickwatch looks first).
#
#   scripts/install.sh [--prefix PREFIX] [--no-build]
#
# PREFIX defaults to /usr/local. --no-build installs what target/release
# already holds (built by `cargo build --release`).
set -eu

prefix=/usr/local
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$build" = 1 ]; then
    cargo build --release
fi

# The shipped detectors: every cdylib crate under plugins/.
plugins=""
for manifest in plugins/*/Cargo.toml; do
    grep -q 'cdylib' "$manifest" || continue
    name=$(basename "$(dirname "$manifest")")
    so="target/release/libtickwatch_${name}.so"
    [ -f "$so" ] || { echo "install.sh: $so is missing; run without --no-build" >&2; exit 1; }
    plugins="$plugins $so"
done
[ -f target/release/tickwatch ] || { echo "install.sh: target/release/tickwatch is missing" >&2; exit 1; }

# Plugins are loaded only from directories no one else can write.
install -d -m 0755 "$prefix/bin" "$prefix/lib/tickwatch/plugins"
install -m 0755 target/release/tickwatch "$prefix/bin/tickwatch"
for so in $plugins; do
    install -m 0644 "$so" "$prefix/lib/tickwatch/plugins/"
done
echo "installed $prefix/bin/tickwatch and$(for so in $plugins; do printf ' %s' "$(basename "$so")"; done) in $prefix/lib/tickwatch/plugins"
