#!/usr/bin/env bash
# Checks the Debian package that scripts/build-deb.sh made (docs/install.md);
# CI runs it after the release build.
#
#   scripts/check-deb.sh [DEB]     (default: target/debian/tickwatch_*.deb)
#
# 1. Contents (dpkg-deb -c / -f): the binary, every shipped plugin (each
#    cdylib crate under plugins/) and nothing else in the plugin directory,
#    the systemd unit, the man page and completions, the example confs, the
#    maintainer scripts.
# 2. The extracted tree (dpkg-deb -x into a temporary root): its
#    usr/bin/tickwatch, run from / with a clean environment, finds its
#    plugins, runs `demo`, and in socket mode makes a 0660 socket that
#    SIGTERM removes.
# 3. As root: `dpkg --root R --force-script-chrootless -i` into a temporary
#    root holding a copy of this machine's users plus a `kapacitor` user, so
#    the maintainer scripts run for real against R's /etc (they honour
#    DPKG_ROOT) and never touch the machine's: the tickwatch user and group,
#    /var/lib/tickwatch (tickwatch, 2770), kapacitor in group tickwatch; the
#    installed binary runs; a second configure changes nothing; purge removes
#    the files and the state. Then, with numeric uids (setpriv), the socket
#    permissions the unit relies on: served as one uid and group in a 0750
#    directory, a uid in that group gets Kapacitor's Info answer, another
#    uid is refused. Skipped with a message when not root.
# 4. systemd-analyze verify on the unit, when the tool exists.
# Any failed check exits non-zero with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-deb: FAIL: $*" >&2
    exit 1
}
ok() { echo "check-deb: ok: $*"; }

if [ $# -gt 0 ]; then
    deb=$1
else
    debs=(target/debian/tickwatch_*.deb)
    [ -f "${debs[0]}" ] || fail "no target/debian/tickwatch_*.deb; run scripts/build-deb.sh"
    [ ${#debs[@]} -eq 1 ] || fail "several packages in target/debian (${debs[*]}); name one"
    deb=${debs[0]}
fi
tmp=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- 1. contents ---------------------------------------------------------
[ "$(dpkg-deb -f "$deb" Package)" = tickwatch ] || fail "package name is not tickwatch"
# "MODE OWNER PATH" per entry.
listing=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }')
has() { # MODE PATH
    grep -qxF -- "$1 0/0 ./$2" <<<"$listing" || fail "$deb lacks ./$2 with mode $1 owned by root:
$listing"
}
has -rwxr-xr-x usr/bin/tickwatch
shipped=0
for manifest in plugins/*/Cargo.toml; do
    grep -q cdylib "$manifest" || continue
    name=$(basename "$(dirname "$manifest")")
    has -rw-r--r-- "usr/lib/tickwatch/plugins/libtickwatch_${name}.so"
    shipped=$((shipped + 1))
done
[ "$shipped" -gt 0 ] || fail "no plugin crate found under plugins/"
in_dir=$(grep -c ' \./usr/lib/tickwatch/plugins/.' <<<"$listing" || true)
[ "$in_dir" -eq "$shipped" ] || fail "usr/lib/tickwatch/plugins holds $in_dir files, expected the $shipped shipped plugins"
has -rw-r--r-- "usr/lib/systemd/system/tickwatch@.service"
has -rw-r--r-- usr/share/doc/tickwatch/examples/kapacitor-process.conf
has -rw-r--r-- usr/share/doc/tickwatch/examples/kapacitor-socket.conf
has -rw-r--r-- usr/share/doc/tickwatch/install.md
has -rw-r--r-- usr/share/man/man1/tickwatch.1.gz
has -rw-r--r-- usr/share/bash-completion/completions/tickwatch
has -rw-r--r-- usr/share/zsh/vendor-completions/_tickwatch
has -rw-r--r-- usr/share/fish/vendor_completions.d/tickwatch.fish
if grep -v ' \./usr/' <<<"$listing" | grep -qv ' \./$'; then
    fail "files outside /usr: $(grep -v ' \./usr/' <<<"$listing")"
fi
control=$(dpkg-deb -I "$deb")
for script in postinst prerm postrm; do
    grep -q " $script " <<<"$control" || fail "no $script maintainer script"
done
grep -q 'Depends:.*passwd' <<<"$control" || fail "Depends lacks passwd (useradd)"
ok "contents: binary, $shipped plugins, unit, man page, completions, examples, maintainer scripts"

# --- 2. the extracted tree -----------------------------------------------
# Only a clean PATH: no cargo, no TICKWATCH_* variables, run from /.
clean() {
    env -i -C / PATH=/usr/bin:/bin "$@"
}
runs() { # ROOT: the installed binary finds its plugins and runs the demo
    local root=$1 out
    out=$(clean "$root/usr/bin/tickwatch" plugins) || fail "tickwatch plugins failed in $root"
    [ "$(grep -c "(ABI [0-9]*)  $root/usr/lib/tickwatch/plugins/libtickwatch_" <<<"$out")" -eq "$shipped" ] ||
        fail "tickwatch plugins in $root does not list the $shipped plugins under usr/lib/tickwatch/plugins:
$out"
    out=$(clean "$root/usr/bin/tickwatch" demo) || fail "tickwatch demo failed in $root"
    [ "$(grep -c ': CAUGHT' <<<"$out")" -eq 3 ] || fail "tickwatch demo in $root did not catch the three faults:
$out"
    clean "$root/usr/bin/tickwatch" info --detector ttest | grep -q 'prog = "' ||
        fail "tickwatch info in $root printed no kapacitor.conf section"
}
x=$tmp/x
dpkg-deb -x "$deb" "$x"
runs "$x"
gzip -dc "$x/usr/share/man/man1/tickwatch.1.gz" | grep -q '^\.TH tickwatch 1' ||
    fail "usr/share/man/man1/tickwatch.1.gz is not tickwatch's man page"
grep -q '_tickwatch()' "$x/usr/share/bash-completion/completions/tickwatch" ||
    fail "the bash completion is not tickwatch's"
ok "extracted: tickwatch plugins, demo and info run with a clean PATH"

# Socket mode, as tickwatch@.service runs it: a 0660 socket, removed on
# SIGTERM.
sock=$tmp/run/ttest.sock
mkdir -p "$tmp/run" "$tmp/state"
# (env directly, not through `clean`: a backgrounded function is a subshell,
# and the signal must reach tickwatch itself.)
env -i -C / PATH=/usr/bin:/bin "$x/usr/bin/tickwatch" serve --detector ttest --socket "$sock" --state-dir "$tmp/state" \
    2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do
    [ -S "$sock" ] && break
    kill -0 "$server" 2>/dev/null || fail "serve --socket exited: $(cat "$tmp/serve.log")"
    sleep 0.1
done
[ -S "$sock" ] || fail "serve --socket made no socket in 10 s: $(cat "$tmp/serve.log")"
[ "$(stat -c %a "$sock")" = 660 ] || fail "the socket's mode is $(stat -c %a "$sock"), not 660"
kill -TERM "$server"
wait "$server" || fail "serve --socket exited non-zero on SIGTERM: $(cat "$tmp/serve.log")"
server=""
[ ! -e "$sock" ] || fail "the socket is still there after SIGTERM"
ok "extracted: serve --socket makes a 0660 socket and removes it on SIGTERM"

# --- 3. dpkg --root: the maintainer scripts ------------------------------
if [ "$(id -u)" -ne 0 ]; then
    echo "check-deb: skipped: installing with dpkg --root needs root (CI runs as root)"
else
    r=$tmp/root
    mkdir -p "$r/etc" "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers"
    touch "$r/var/lib/dpkg/status" "$r/var/lib/dpkg/available"
    for f in passwd group shadow gshadow login.defs; do
        if [ -f "/etc/$f" ]; then cp -p "/etc/$f" "$r/etc/$f"; fi
    done
    # Kapacitor's package user, with ids this machine does not use.
    kid=64990
    while grep -q "^[^:]*:[^:]*:$kid:" "$r/etc/passwd" "$r/etc/group"; do kid=$((kid + 1)); done
    grep -q '^kapacitor:' "$r/etc/passwd" || {
        echo "kapacitor:x:$kid:$kid::/var/lib/kapacitor:/bin/false" >>"$r/etc/passwd"
        echo "kapacitor:x:$kid:" >>"$r/etc/group"
        if [ -f "$r/etc/shadow" ]; then echo "kapacitor:*:20000:0:99999:7:::" >>"$r/etc/shadow"; fi
        if [ -f "$r/etc/gshadow" ]; then echo "kapacitor:!::" >>"$r/etc/gshadow"; fi
    }
    machine_passwd=$(cat /etc/passwd)
    dpkg_root() {
        dpkg --root="$r" --force-script-chrootless --force-depends --log=/dev/null "$@" \
            >"$tmp/dpkg.log" 2>&1 || fail "dpkg $*: $(cat "$tmp/dpkg.log")"
    }
    dpkg_root -i "$(realpath "$deb")"
    user=$(grep '^tickwatch:' "$r/etc/passwd") || fail "postinst made no tickwatch user"
    uid=$(cut -d: -f3 <<<"$user")
    [ "$uid" -lt 1000 ] || fail "the tickwatch user is not a system user: $user"
    [ "$(cut -d: -f7 <<<"$user")" = /usr/sbin/nologin ] || fail "the tickwatch user can log in: $user"
    group=$(grep '^tickwatch:' "$r/etc/group") || fail "postinst made no tickwatch group"
    [[ ",$(cut -d: -f4 <<<"$group")," == *,kapacitor,* ]] || fail "kapacitor is not in group tickwatch: $group"
    [ "$(stat -c '%u %g %a' "$r/var/lib/tickwatch")" = "$uid $(cut -d: -f3 <<<"$group") 2770" ] ||
        fail "/var/lib/tickwatch is $(stat -c '%U:%G %a' "$r/var/lib/tickwatch"), not tickwatch:tickwatch 2770"
    [ "$(cat /etc/passwd)" = "$machine_passwd" ] || fail "the maintainer scripts changed this machine's /etc/passwd"
    runs "$r"
    # A second configure (dpkg-reconfigure, an upgrade) adds nothing.
    before=$(cat "$r/etc/passwd" "$r/etc/group")
    DPKG_ROOT=$r sh "$r/var/lib/dpkg/info/tickwatch.postinst" configure 0.1.0-1 ||
        fail "a second postinst configure failed"
    [ "$(cat "$r/etc/passwd" "$r/etc/group")" = "$before" ] || fail "a second postinst configure changed users or groups"
    dpkg_root --purge tickwatch
    [ ! -e "$r/usr/bin/tickwatch" ] || fail "purge left usr/bin/tickwatch"
    [ ! -e "$r/var/lib/tickwatch" ] || fail "purge left /var/lib/tickwatch"
    ok "dpkg --root: user, group, kapacitor's membership, /var/lib/tickwatch 2770, runs, idempotent, purge"

    # Socket permissions as the unit sets them up, with real uids (numeric,
    # so this machine's users stay untouched): tickwatch serves as uid T,
    # group G, in a 0750 T:G directory; a "kapacitor" uid in group G gets an
    # Info answer over the socket, another uid is refused.
    if command -v setpriv >/dev/null && [ -x /usr/bin/python3 ]; then
        t_uid=64970 g_id=64971 k_uid=64972 o_uid=64973
        chmod 0755 "$tmp"
        run=$tmp/perm/run state=$tmp/perm/state
        mkdir -p "$run" "$state"
        chmod 0755 "$tmp/perm"
        chown "$t_uid:$g_id" "$run" "$state"
        chmod 0750 "$run"
        chmod 2770 "$state"
        sock=$run/ttest.sock
        setpriv --reuid="$t_uid" --regid="$g_id" --clear-groups \
            env -i -C / PATH=/usr/bin:/bin "$x/usr/bin/tickwatch" serve --detector ttest \
            --socket "$sock" --state-dir "$state" 2>"$tmp/perm.log" &
        server=$!
        for _ in $(seq 100); do
            [ -S "$sock" ] && break
            kill -0 "$server" 2>/dev/null || fail "serve as uid $t_uid exited: $(cat "$tmp/perm.log")"
            sleep 0.1
        done
        [ -S "$sock" ] || fail "serve as uid $t_uid made no socket: $(cat "$tmp/perm.log")"
        [ "$(stat -c '%u %g %a' "$sock")" = "$t_uid $g_id 660" ] ||
            fail "the socket is $(stat -c '%u %g %a' "$sock"), not $t_uid $g_id 660"
        # Kapacitor's first exchange: one frame holding Request{info: {}};
        # the answer must be Response{info: …} naming ttest's options.
        info='
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(3)
s.sendall(b"\x02\x0a\x00")
n, shift = 0, 0
while True:
    b = s.recv(1)[0]
    n |= (b & 0x7F) << shift
    shift += 7
    if b < 0x80:
        break
msg = b""
while len(msg) < n:
    chunk = s.recv(n - len(msg))
    if not chunk:
        sys.exit("connection closed")
    msg += chunk
sys.exit(0 if msg[:1] == b"\x0a" and b"alpha" in msg else "not an InfoResponse: %r" % msg[:40])
'
        setpriv --reuid="$k_uid" --regid="$k_uid" --groups="$g_id" \
            /usr/bin/python3 -c "$info" "$sock" ||
            fail "a user in the socket's group got no Info answer: $(cat "$tmp/perm.log")"
        rc=0
        setpriv --reuid="$o_uid" --regid="$o_uid" --clear-groups \
            /usr/bin/python3 -c "$info" "$sock" || rc=$?
        [ "$rc" -eq 3 ] || fail "a user outside the socket's group was not refused (exit $rc)"
        kill -TERM "$server"
        wait "$server" || fail "serve as uid $t_uid exited non-zero on SIGTERM: $(cat "$tmp/perm.log")"
        server=""
        ok "socket permissions: group member gets Info, others refused"
    else
        echo "check-deb: skipped: socket permission check needs setpriv and /usr/bin/python3"
    fi
fi

# --- 4. the unit ---------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    unit=$tmp/unit/tickwatch@ttest.service
    mkdir -p "$tmp/unit"
    # The instance, with the binary at its extracted path (verify checks
    # that ExecStart exists).
    sed "s|/usr/bin/tickwatch|$x/usr/bin/tickwatch|" "$x/usr/lib/systemd/system/tickwatch@.service" >"$unit"
    SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || true
    # Only our unit's findings count (the machine's own units may be odd).
    if grep -qi "tickwatch" "$tmp/verify.log"; then
        fail "systemd-analyze verify: $(cat "$tmp/verify.log")"
    fi
    ok "systemd-analyze verify tickwatch@ttest.service"
else
    echo "check-deb: skipped: no systemd-analyze here; the unit is checked by reading"
fi
echo "check-deb: $deb passed"
