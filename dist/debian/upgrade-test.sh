#!/bin/bash
# The package's upgrade never withdraws, shown with the real FRR fixture and a streaming
# monitor at the BGP peer:
#   dist/debian/upgrade-test.sh target/debian/anycastd_VERSION_ARCH.deb
# Installs the package, runs the installed daemon on the fixture (its default control socket,
# as under systemd), upgrades in place with dpkg -i (preinst hands over with
# `stop --keep-announced`), starts the new daemon as systemd would, and checks that the peer
# saw no withdrawal; then SIGTERM withdraws everything and the package is purged. Needs root,
# frr and gobgpd. Run by .ci/run.
set -euo pipefail
DEB=$(realpath "$1")
cd "$(dirname "$0")/../.."
export TB_NAME=acdpkg TB_DIR=/tmp/acdpkg TB_PEER=gobgp
T=tests/testbed/testbed.sh
W=$(mktemp -d)
pid=; monitor=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2> /dev/null || true
	[ -n "$monitor" ] && kill "$monitor" 2> /dev/null || true
	$T down > /dev/null 2>&1 || true
	dpkg --purge anycastd > /dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT
say() { echo "[upgrade-test] $*"; }
fail() { say "FAILED: $*"; exit 1; }

dpkg -i "$DEB" > "$W/dpkg1.log" 2>&1 || fail "install: $(tail -3 "$W/dpkg1.log")"
# What the package installed.
/usr/bin/anycastd --version | grep -q '^anycastd ' || fail "anycastd --version"
/usr/bin/anycastd check-config -c /usr/share/doc/anycastd/examples/config.toml > /dev/null ||
	fail "check-config of the installed example"
if /usr/bin/anycastd check-config -c /etc/anycastd/config.toml > /dev/null 2>&1; then
	fail "the installed /etc/anycastd/config.toml configures services: it must announce nothing"
fi
if command -v systemd-analyze > /dev/null; then
	systemd-analyze verify /lib/systemd/system/anycastd.service 2> "$W/verify.log" ||
		fail "systemd-analyze verify: $(cat "$W/verify.log")"
fi
id -nG anycastd | grep -qw frrvty || fail "the anycastd user is not in frrvty: $(id anycastd)"
man -w anycastd > /dev/null 2>&1 || fail "no manual page"
say "installed: --version, check-config of the example, the unit verifies, user anycastd in frrvty"
$T up > "$W/testbed.log" 2>&1 || fail "testbed: $(tail -3 "$W/testbed.log")"
cat > "$W/config.toml" <<EOT
[journal]
path = "$W/journal"

[frrouting]
vtysh_args = ["--vty_socket", "$TB_DIR/frr/run", "--config_dir", "$TB_DIR/frr/etc"]

[services.dns]
prefixes.frrouting = ["2001:db8::b19:bad:53", "203.0.113.53"]
checks.exec = [{ name = "ok", command = "/bin/true", interval = "200ms" }]
EOT
chmod 0600 "$W/config.toml"
routes() { ip netns exec "$TB_NAME-peer" gobgp global rib -a "$1" 2> /dev/null | grep -c '^\*>' || true; }
wait_routes() { # v4 v6
	for _ in $(seq 300); do [ "$(routes ipv4)" = "$1" ] && [ "$(routes ipv6)" = "$2" ] && return 0; sleep 0.1; done
	fail "the peer has $(routes ipv4) IPv4 and $(routes ipv6) IPv6 routes, expected $1 and $2"
}

/usr/bin/anycastd run -c "$W/config.toml" > "$W/run1.log" 2>&1 &
pid=$!
wait_routes 1 1
say "installed daemon announces dns (pid $pid)"
ip netns exec "$TB_NAME-peer" gobgp monitor global rib -j > "$W/monitor.jsonl" 2> /dev/null &
monitor=$!
sleep 0.5

dpkg -i "$DEB" > "$W/dpkg2.log" 2>&1 || fail "upgrade: $(tail -3 "$W/dpkg2.log")"
wait "$pid" || fail "the old daemon exited $? at the handover"
pid=
say "upgraded: the old daemon handed over and exited 0"
grep -q "handed over for the upgrade" "$W/dpkg2.log" || fail "postinst did not say it: $(cat "$W/dpkg2.log")"
/usr/bin/anycastd run -c "$W/config.toml" > "$W/run2.log" 2>&1 &
pid=$!
for _ in $(seq 100); do /usr/bin/anycastd status -c "$W/config.toml" 2> /dev/null | grep -q "^dns: healthy" && break; sleep 0.1; done
sleep 2
wait_routes 1 1
if grep -q '"withdrawal":true' "$W/monitor.jsonl"; then
	fail "the peer saw a withdrawal during the upgrade: $(grep '"withdrawal":true' "$W/monitor.jsonl" | head -3)"
fi
/usr/bin/anycastd history dns -c "$W/config.toml" | grep -q "handed over, prefixes left announced" || fail "no handover in the journal"
say "the new daemon took over; the peer saw no withdrawal"

kill -TERM "$pid"
wait "$pid" || fail "SIGTERM exit $?"
pid=
wait_routes 0 0
dpkg --purge anycastd > "$W/purge.log" 2>&1 || fail "purge: $(tail -3 "$W/purge.log")"
[ ! -e /usr/bin/anycastd ] && [ ! -e /etc/anycastd/config.toml ] || fail "purge left files"
say "SIGTERM withdrew everything; purged"
