#!/usr/bin/env bash
# Soak: anycastd against real FRR and a real BGP peer (tests/testbed/testbed.sh), 100 services
# whose checks flap at random, the daemon killed (SIGKILL or SIGTERM) and restarted at random
# points. At the end, with every check settled, it checks that:
#   - the peer received exactly the healthy services' prefixes, and FRR has no other
#     `network` line (no orphan);
#   - the journal decodes end to end (`history` of every service), or a journal moved aside
#     after a kill is reported as such by the daemon's log;
#   - `replay` of every service reports no divergence (crash gaps are expected);
#   - RSS and open fds of each daemon run did not grow between 20 s after its start and its end;
#   - SIGTERM withdraws everything.
# Never run in CI. Needs root, frr, gobgpd (or bird2 with TB_PEER=bird).
#
#   benches/soak.sh [SECONDS]        (default 600; SOAK_SERVICES, SOAK_KEEP=1 to keep the dir)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-600}
SERVICES=${SOAK_SERVICES:-100}
export TB_NAME=${TB_NAME:-acdsoak}
export TB_DIR=${TB_DIR:-/tmp/$TB_NAME}
W=$TB_DIR/soak
PORT=${SOAK_PORT:-19013}
TB=tests/testbed/testbed.sh
fail=0

say() { echo "[soak $(date +%T)] $*"; }
bad() { say "FAIL: $*"; fail=1; }

[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespaces)" >&2; exit 77; }
cargo build --release --quiet --bin anycastd --example cabourotte_emulator
BIN=$PWD/target/release/anycastd
EMU=$PWD/target/release/examples/cabourotte_emulator

cleanup() {
	[ -n "${DPID:-}" ] && kill -9 "$DPID" 2> /dev/null || true
	[ -n "${EPID:-}" ] && kill "$EPID" 2> /dev/null || true
	"$TB" down > /dev/null 2>&1 || true
	[ "${SOAK_KEEP:-0}" = 1 ] || rm -rf "$TB_DIR"
}
trap cleanup EXIT

"$TB" down > /dev/null 2>&1 || true
"$TB" up
"$TB" wait
mkdir -p "$W/checks"

v4() { echo "10.77.$(($1 / 256)).$(($1 % 256))"; }
v6() { if [ "$1" = 0 ]; then echo "fd77::"; else printf 'fd77::%x' "$1"; fi; }

# Service addresses on lo of FRR's namespace (bgp network import-check), the config.
{
	cat << EOF
[journal]
path = "$W/journal"

[control]
socket = "$W/ctl.sock"

[frrouting]
vtysh_args = ["--vty_socket", "$TB_DIR/frr/run", "--config_dir", "$TB_DIR/frr/etc"]
vtysh_timeout = "10s"
reconcile_interval = "10s"
EOF
	for i in $(seq 0 $((SERVICES - 1))); do
		ip -n "$TB_NAME-r1" addr add "$(v4 "$i")/32" dev lo
		ip -n "$TB_NAME-r1" addr add "$(v6 "$i")/128" dev lo nodad
		echo pass > "$W/checks/c$i"
		printf '\n[services.s%d]\nprefixes.frrouting = ["%s", "%s"]\n' "$i" "$(v4 "$i")" "$(v6 "$i")"
		printf 'checks.cabourotte = [{ name = "c%d", url = "http://127.0.0.1:%d", interval = "1s" }]\n' "$i" "$PORT"
	done
} > "$W/anycastd.toml"
"$BIN" check-config -c "$W/anycastd.toml" > /dev/null

"$EMU" "127.0.0.1:$PORT" "$W/checks" > "$W/emulator.log" 2>&1 &
EPID=$!

runs=0
kills=0
terms=0
samples=()
start_daemon() {
	runs=$((runs + 1))
	"$BIN" run -c "$W/anycastd.toml" --log-format json >> "$W/daemon.log" 2>&1 &
	DPID=$!
	DSTART=$SECONDS
	EARLY=""
}
sample() { # pid -> "rss_kib fds"
	echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2> /dev/null || echo 0) $(ls "/proc/$1/fd" 2> /dev/null | wc -l)"
}
stop_daemon() { # signal
	local late
	late=$(sample "$DPID")
	[ -n "$EARLY" ] && samples+=("run $runs ($((SECONDS - DSTART)) s): rss/fds at 20 s $EARLY, at the end $late")
	kill "-$1" "$DPID" 2> /dev/null || true
	wait "$DPID" 2> /dev/null || true
	DPID=""
}

say "soak for $DURATION s: $SERVICES services, 1 check each at 1 s, random flaps and kills"
start_daemon
END=$((SECONDS + DURATION))
NEXT_KILL=$((SECONDS + 20 + RANDOM % 60))
flips=0
while [ $SECONDS -lt $END ]; do
	# Flap: each second, a few random checks change (pass <-> fail), so some services flap fast.
	for _ in 1 2 3 4 5; do
		i=$((RANDOM % SERVICES))
		if grep -q pass "$W/checks/c$i"; then echo "fail soak" > "$W/checks/c$i"; else echo pass > "$W/checks/c$i"; fi
		flips=$((flips + 1))
	done
	if [ -z "$EARLY" ] && [ $((SECONDS - DSTART)) -ge 20 ]; then EARLY=$(sample "$DPID"); fi
	if [ $SECONDS -ge $NEXT_KILL ]; then
		if [ $((RANDOM % 2)) = 0 ]; then
			stop_daemon KILL
			kills=$((kills + 1))
		else
			stop_daemon TERM
			terms=$((terms + 1))
		fi
		sleep 0.$((RANDOM % 10))
		start_daemon
		NEXT_KILL=$((SECONDS + 20 + RANDOM % 60))
	fi
	sleep 1
done
say "flips $flips, daemon runs $runs ($kills SIGKILL, $terms SIGTERM)"

# Settle: every check to a final random state, then give the daemon time to converge.
healthy=()
for i in $(seq 0 $((SERVICES - 1))); do
	if [ $((RANDOM % 3)) = 0 ]; then
		echo "fail final" > "$W/checks/c$i"
	else
		echo pass > "$W/checks/c$i"
		healthy+=("$(v4 "$i")/32" "$(v6 "$i")/128")
	fi
done
printf '%s\n' "${healthy[@]}" | sort > "$W/expected"
sleep 25
EARLY=${EARLY:-$(sample "$DPID")}

# FRR's network lines and the peer's routes (default VRF, both sessions).
"$TB" vtysh -c "show running-config bgpd" | awk '/^ *network / {print $2}' | sort > "$W/frr-networks"
{
	"$TB" peer neighbor 192.0.2.1 adj-in -a ipv4 -j 2> /dev/null | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin) or {}))' || true
	"$TB" peer neighbor 2001:db8:ffff:1::1 adj-in -a ipv6 -j 2> /dev/null | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin) or {}))' || true
} | grep -E '^(10\.77\.|fd77:)' | sort > "$W/peer-routes"
# The README example's dns prefixes are the testbed's own; count only ours.
grep -E '^(10\.77\.|fd77:)' "$W/frr-networks" > "$W/frr-ours" || true
if diff -q "$W/expected" "$W/peer-routes" > /dev/null; then
	say "peer routes = healthy prefixes ($(wc -l < "$W/expected"))"
else
	bad "peer routes differ from the healthy prefixes: $(diff "$W/expected" "$W/peer-routes" | grep -c '^[<>]') lines"
fi
if diff -q "$W/expected" "$W/frr-ours" > /dev/null; then
	say "FRR network lines = healthy prefixes (no orphan)"
else
	bad "FRR network lines differ from the healthy prefixes: $(diff "$W/expected" "$W/frr-ours" | head -5 | tr '\n' ' ')"
fi

# Journal and replay, through the running daemon.
divergent=0
gaps=0
transitions=0
verified=0
for i in $(seq 0 $((SERVICES - 1))); do
	if ! "$BIN" history "s$i" -c "$W/anycastd.toml" --json > "$W/history.json" 2> "$W/history.err"; then
		bad "history s$i: $(head -1 "$W/history.err")"
	fi
	if ! "$BIN" replay "s$i" -c "$W/anycastd.toml" --json > "$W/replay.json" 2> "$W/replay.err"; then
		bad "replay s$i: $(head -1 "$W/replay.err")"
		continue
	fi
	read -r d g t v < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["divergences"]), len(r["gaps"]), r["recorded"]["summary"]["transitions"], r["verified"])' "$W/replay.json" || echo "? 0 0 0")
	[ "$d" = "?" ] && { bad "replay s$i: unreadable JSON"; continue; }
	divergent=$((divergent + d))
	gaps=$((gaps + g))
	transitions=$((transitions + t))
	verified=$((verified + v))
	[ "$d" = 0 ] || bad "replay s$i: $d divergence(s): $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["divergences"][:2])' "$W/replay.json")"
done
say "replay: $transitions transitions over $SERVICES services ($verified verified by the re-run), $gaps crash gaps, $divergent divergences"
moved=$(grep -c "moved_to" "$W/daemon.log" || true)
say "journal moved aside after a kill: $moved time(s)"

stop_daemon TERM
for s in "${samples[@]}"; do say "$s"; done
sleep 3
left=$({
	"$TB" peer neighbor 192.0.2.1 adj-in -a ipv4 2> /dev/null
	"$TB" peer neighbor 2001:db8:ffff:1::1 adj-in -a ipv6 2> /dev/null
} | grep -cE '10\.77\.|fd77:' || true)
[ "$left" = 0 ] && say "SIGTERM: the peer has none of the prefixes left" || bad "SIGTERM left $left routes at the peer"
[ "$fail" = 0 ] && say "PASS" || say "FAILED"
exit "$fail"
