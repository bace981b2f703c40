#!/bin/bash
# Failure -> withdrawn at the peer, and back, through each routing backend: one service per
# backend (FRR, BIRD, GoBGP) with one exec check `test -e FLAG` at 100 ms, rise 1, fall 1.
# The flag is removed at t0; a streaming monitor at the peer (`gobgp monitor global rib -j`,
# each line stamped as it arrives) gives the moment the peer sees the withdrawal; the same
# for the announcement after the flag returns. The times include the wait for the check's next
# poll (0-100 ms, the same for every backend). Needs root, frr, bird2 and gobgpd; uses its own
# testbed (tests/testbed/testbed.sh with TB_BIRD=1 TB_GOBGP=1, namespaces acdpr-*; anycastd runs
# in the local gobgpd's namespace). BENCHMARKS.md has the figures.
# Then each routing daemon is restarted (bgpd with `vtysh -b` as watchfrr does, BIRD, gobgpd)
# RUNS times: the time from the restart to its BGP session with the peer being Established
# (the peer's `gobgp neighbor`, polled every 20 ms), and from then to the prefix at the peer again.
# With MODE=deprefer each service has `on_unhealthy = "deprefer"` (MED 4242): a failure is
# the peer receiving the prefix again with MED 4242, a recovery receiving it without; the
# restart part is skipped.
#   [MODE=withdraw|deprefer] benches/peer_reaction.sh [RUNS] [ANYCASTD_BINARY]
set -euo pipefail
RUNS=${1:-10}
BIN=${2:-$(dirname "$0")/../target/release/anycastd}
MODE=${MODE:-withdraw}
case $MODE in withdraw | deprefer) ;; *) echo "MODE must be withdraw or deprefer" >&2; exit 2 ;; esac
export TB_NAME=acdpr TB_DIR=/tmp/acdpr TB_BIRD=1 TB_GOBGP=${TB_GOBGP:-1}
T=$(cd "$(dirname "$0")/.." && pwd)/tests/testbed/testbed.sh
W=/tmp/acdpr-w
cleanup() {
	[ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	for f in $W/mon1.pid $W/mon2.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	$T down >/dev/null 2>&1 || true
}
trap cleanup EXIT
$T up >/dev/null 2>&1
rm -rf $W; mkdir -p $W
declare -A PREFIX=([frr]=203.0.113.53/32 [bird]=198.51.100.61/32 [gobgp]=198.51.100.62/32)
BACKENDS="frr bird"
[ "$TB_GOBGP" = 1 ] && BACKENDS="frr bird gobgp"
{
	echo "[journal]"; echo "path = \"$W/journal\""
	echo "[control]"; echo "socket = \"$W/ctl.sock\""
	echo "[frrouting]"; echo "vtysh_args = [\"--vty_socket\", \"$TB_DIR/frr/run\", \"--config_dir\", \"$TB_DIR/frr/etc\"]"
	echo "[bird]"; echo "include_dir = \"$TB_DIR/run-anycastd\""
	for b in $BACKENDS; do
		case $b in
		frr) p="prefixes.frrouting = [\"203.0.113.53\"]" ;;
		bird) p="prefixes.bird = [{ prefix = \"198.51.100.61\", socket = \"$TB_DIR/bird/bird.ctl\" }]" ;;
		gobgp) p="prefixes.gobgp = [\"198.51.100.62\"]" ;;
		esac
		touch $W/up-$b
		[ "$MODE" = deprefer ] && p="$p
on_unhealthy = \"deprefer\"
deprefer = { med = 4242 }"
		printf '[services.%s]\n%s\nrise = 1\nfall = 1\nchecks.exec = [{ name = "flag", command = "/usr/bin/test", args = ["-e", "%s"], interval = "100ms" }]\n' \
			"$b" "$p" "$W/up-$b"
	done
} > $W/config.toml
chmod 600 $W/config.toml
# the monitor: every UPDATE at the peer, stamped with the time it arrived
(ip netns exec $TB_NAME-peer gobgp monitor global rib -j 2>/dev/null & echo $! > $W/mon1.pid; wait) | while IFS= read -r line; do
	echo "$(date +%s%N) $line"
done > $W/monitor &
MON=$!
# the peer's sessions, polled every 20 ms: a line "STAMP ADDRESS STATE" at each change
(
	echo $BASHPID > $W/mon2.pid
	declare -A last
	while :; do
		now=$(date +%s%N)
		while read -r addr _ _ state _; do
			[ "${last[$addr]:-}" = "$state" ] || { echo "$now $addr $state"; last[$addr]=$state; }
		done < <(ip netns exec $TB_NAME-peer gobgp neighbor 2>/dev/null | tail -n +2)
		sleep 0.02
	done
) > $W/neighbors &
# in the local gobgpd's namespace, where its API listens (127.0.0.1:50051); FRR's and BIRD's
# control sockets are files, reached from any namespace
if [ "$TB_GOBGP" = 1 ]; then IN="ip netns exec $TB_NAME-g1"; else IN=; fi
$IN "$BIN" run -c $W/config.toml > $W/log 2>&1 &
PID=$!
# wait until the peer has every service's prefix
seen() { # prefix withdrawn(true|false) after-ns -> the first stamp after after-ns, or nothing
	# (MODE=deprefer: "withdrawn" is announced with MED 4242, "announced" is without it)
	awk -v p="\"prefix\":\"$1\"" -v w="$2" -v a="$3" -v m="$MODE" '
		function down() {
			if (m == "deprefer") return index($0, "\"metric\":4242") > 0 && index($0, "\"withdrawal\":true") == 0
			return index($0, "\"withdrawal\":true") > 0
		}
		index($0, p) && ((w == "true") == down()) && $1 > a { print $1; exit }' $W/monitor
}
wait_for() { # prefix withdrawn after-ns
	for _ in $(seq 3000); do s=$(seen "$@"); [ -n "$s" ] && { echo "$s"; return; }; sleep 0.01; done
	echo "timeout waiting for $1 withdrawn=$2 at the peer" >&2; exit 1
}
for b in $BACKENDS; do wait_for "${PREFIX[$b]}" false 0 >/dev/null; done
sleep 2
for b in $BACKENDS; do
	down=(); up=()
	for r in $(seq "$RUNS"); do
		t0=$(date +%s%N); rm $W/up-$b
		t1=$(wait_for "${PREFIX[$b]}" true "$t0")
		down+=($(( (t1 - t0) / 1000000 )))
		sleep 0.5
		t2=$(date +%s%N); touch $W/up-$b
		t3=$(wait_for "${PREFIX[$b]}" false "$t2")
		up+=($(( (t3 - t2) / 1000000 )))
		sleep 0.5
	done
	med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
	max() { printf '%s\n' "$@" | sort -n | tail -1; }
	what=withdrawn; [ "$MODE" = deprefer ] && what="de-preferred (MED 4242)"
	printf '%-6s failure -> %s at the peer: median %s ms, max %s ms (%s runs: %s)\n' \
		"$b" "$what" "$(med "${down[@]}")" "$(max "${down[@]}")" "$RUNS" "${down[*]}"
	printf '%-6s recovery -> announced normally at the peer: median %s ms, max %s ms (%s runs: %s)\n' \
		"$b" "$(med "${up[@]}")" "$(max "${up[@]}")" "$RUNS" "${up[*]}"
done

[ "$MODE" = deprefer ] && exit 0
declare -A NEIGHBOR=([frr]=192.0.2.1 [bird]=192.0.2.9 [gobgp]=192.0.2.13)
declare -A RESTART=([frr]="restart-bgpd --boot" [bird]=restart-bird [gobgp]=restart-gobgp)
established() { # neighbor after-ns -> the first stamp after after-ns at which the session
	# came up again (Established after having been seen in another state)
	awk -v n="$1" -v a="$2" '
		$1 > a && $2 == n && $3 != "Establ" { down = 1 }
		$1 > a && $2 == n && $3 == "Establ" && down { print $1; exit }' $W/neighbors
}
for b in $BACKENDS; do
	up=(); back=()
	for r in $(seq "$RUNS"); do
		t0=$(date +%s%N)
		$T ${RESTART[$b]} >/dev/null 2>&1
		for _ in $(seq 3000); do e=$(established "${NEIGHBOR[$b]}" "$t0"); [ -n "$e" ] && break; sleep 0.01; done
		[ -n "$e" ] || { echo "timeout: $b session not established again" >&2; exit 1; }
		t1=$(wait_for "${PREFIX[$b]}" false "$t0")
		up+=($(( (e - t0) / 1000000 )))
		back+=($(( (t1 - e) / 1000000 )))
		sleep 2
	done
	printf '%-6s restart -> session Established: median %s ms (%s runs: %s)\n' \
		"$b" "$(med "${up[@]}")" "$RUNS" "${up[*]}"
	printf '%-6s session Established -> prefix at the peer: median %s ms, max %s ms (%s runs: %s)\n' \
		"$b" "$(med "${back[@]}")" "$(max "${back[@]}")" "$RUNS" "${back[*]}"
done
