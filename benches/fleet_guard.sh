#!/bin/bash
# The fleet guard at scale: SITES daemons (default 100) x SERVICES guarded services (default
# 10) against one etcd on this machine, each daemon with its own fake FRR
# (tests/support/fake_vtysh.py), journal and control socket. Every service has one TCP check
# (1 s) against one listener shared by the whole fleet and `fleet = { min_announcing = MIN }`
# (default SITES / 2). Stopping the listener is a fleet-wide failure, as a backbone failure is:
# every check of every site fails within a second.
#
# What it reports (BENCHMARKS.md has the figures):
#   - start: spawn -> every service announced at every site (read from the fake FRRs);
#   - steady state: etcd requests per second by gRPC method (etcd's own /metrics, the
#     grpc_server_msg_received_total counters), the daemons' CPU and RSS;
#   - fleet-wide failure: the time until every service is announced by exactly MIN sites (the
#     oracle: the fake FRRs' state files, sampled every 200 ms; the fewest ever seen is printed,
#     it must never be below MIN), etcd requests during it by method, and the guard's decision
#     latency: from the journaled transition to the journaled guard answer, per site and service
#     (`anycastd history SERVICE --json`), median, p99 and max;
#   - recovery: listener back -> every service announced at every site; requests;
#   - SIGTERM of every daemon.
#
#   [FAKE_FRR=python|native] benches/fleet_guard.sh [SITES] [SERVICES] [MIN] [ANYCASTD_BINARY]
# Needs etcd (Debian's etcd-server) and python3; runs as any user; uses 127.0.0.1 only.
set -euo pipefail
SITES=${1:-100}
SERVICES=${2:-10}
MIN=${3:-$((SITES / 2))}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${4:-$ROOT/target/release/anycastd}
VTYSH=$ROOT/tests/support/fake_vtysh.py
# FAKE_FRR=native: the fleet bench's own fake vtysh (`fleet --fake-vtysh`, compiled: about a
# millisecond a call where the Python one takes 30-50 ms of CPU), built by `cargo bench
# --bench fleet --no-run`; the default, python, is tests/support/fake_vtysh.py.
FAKE_FRR=${FAKE_FRR:-python}
if [ "$FAKE_FRR" = native ] && [ -n "${FLEET_BENCH_BIN:-}" ]; then
	VTYSH=$FLEET_BENCH_BIN # a fleet bench binary built before (its fake vtysh)
elif [ "$FAKE_FRR" = native ]; then
	VTYSH=$(cd "$ROOT" && cargo bench --bench fleet --no-run --message-format=json 2> /dev/null |
		python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "fleet" and m.get("executable"):
        print(m["executable"])')
	[ -x "$VTYSH" ] || { echo "cannot build the fleet bench (its fake vtysh)" >&2; exit 1; }
elif [ "$FAKE_FRR" != python ]; then
	echo "FAKE_FRR must be python or native" >&2; exit 2
fi
W=$(mktemp -d /tmp/acd-fleet-guard.XXXXXX)
PIDS=()
ETCD_PID=
LISTENER_PID=

cleanup() {
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	[ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
	[ -n "$ETCD_PID" ] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null || true
	[ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT

[ -x "$BIN" ] || { echo "no anycastd binary at $BIN (cargo build --release)" >&2; exit 1; }
command -v etcd > /dev/null || { echo "etcd is not installed (apt install etcd-server)" >&2; exit 1; }
chmod 755 "$VTYSH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# etcd, its metrics on the client URL.
CLIENT_PORT=$(free_port)
PEER_PORT=$(free_port)
ETCD=http://127.0.0.1:$CLIENT_PORT
etcd --name=acd-bench --data-dir="$W/etcd" --listen-client-urls="$ETCD" \
	--advertise-client-urls="$ETCD" --listen-peer-urls="http://127.0.0.1:$PEER_PORT" \
	--initial-advertise-peer-urls="http://127.0.0.1:$PEER_PORT" \
	--initial-cluster="acd-bench=http://127.0.0.1:$PEER_PORT" --initial-cluster-state=new \
	--log-level=error > "$W/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do curl -fs "$ETCD/health" > /dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$ETCD/health" > /dev/null || { echo "etcd did not start: $(tail -3 "$W/etcd.log")" >&2; exit 1; }

# The listener every TCP check connects to (accepts and closes).
LISTEN_PORT=$(free_port)
listener_start() {
	python3 - "$LISTEN_PORT" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1024)
while True:
    c, _ = s.accept()
    c.close()
EOF
	LISTENER_PID=$!
	for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $LISTEN_PORT), 1)" 2>/dev/null && return; sleep 0.1; done
}
listener_start

# The sites.
for i in $(seq 1 "$SITES"); do
	d=$W/site$i
	mkdir -p "$d"
	{
		echo "[journal]"; echo "path = \"$d/journal\""
		echo "[control]"; echo "socket = \"$d/ctl.sock\""
		if [ "$FAKE_FRR" = native ]; then
			echo "[frrouting]"; echo "vtysh_args = [\"--fake-vtysh\", \"--state\", \"$d/frr.state\", \"--log\", \"$d/vtysh.log\"]"
		else
			echo "[frrouting]"; echo "vtysh_args = [\"--state\", \"$d/frr.json\"]"
		fi
		echo "[fleet]"; echo "etcd = [\"$ETCD\"]"; echo "site = \"site$i\""
		for s in $(seq 1 "$SERVICES"); do
			echo "[services.svc$s]"
			echo "fleet = { min_announcing = $MIN }"
			echo "prefixes.frrouting = [{ prefix = \"198.51.100.$s\", vtysh = \"$VTYSH\" }]"
			echo "checks.tcp = [{ address = \"127.0.0.1:$LISTEN_PORT\", name = \"up\", interval = \"1s\", timeout = \"500ms\" }]"
		done
	} > "$d/config.toml"
done

# Counts, from the fake FRRs: "ANNOUNCING_PAIRS FEWEST_PER_SERVICE MOST_PER_SERVICE".
count() {
	python3 - "$W" "$SITES" "$SERVICES" <<'EOF'
import json, sys
w, sites, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = [0] * services
for i in range(1, sites + 1):
    nets = []
    try:
        # the native fake: one network a line
        nets = open(f"{w}/site{i}/frr.state").read().split()
    except FileNotFoundError:
        pass
    for _ in range(20 if not nets else 0):
        try:
            nets = json.load(open(f"{w}/site{i}/frr.json"))["networks"]["default"]
            break
        except FileNotFoundError:
            break
        except (ValueError, KeyError):
            continue
    for s in range(services):
        if f"198.51.100.{s + 1}/32" in nets:
            per[s] += 1
print(sum(per), min(per), max(per))
EOF
}

# etcd's gRPC messages received, by method.
requests() {
	curl -fs "$ETCD/metrics" | python3 -c '
import sys, re, json
out = {}
for line in sys.stdin:
    m = re.match(r"grpc_server_msg_received_total\{.*grpc_method=\"(\w+)\".*\} (\S+)", line)
    if m:
        out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
print(json.dumps(out))'
}
rate() { # BEFORE AFTER SECONDS
	python3 -c '
import json, sys
a, b, s = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
d = {k: b.get(k, 0) - a.get(k, 0) for k in b}
total = sum(d.values())
print(f"{total:.0f} requests, {total / s:.1f}/s: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v))
' "$1" "$2" "$3"
}
daemons_cpu_rss() { # total CPU ticks and RSS (KiB) of the daemons
	local ticks=0 rss=0
	for pid in "${PIDS[@]}"; do
		[ -r /proc/$pid/stat ] || continue
		read -r -a st < /proc/$pid/stat
		ticks=$((ticks + st[13] + st[14]))
		rss=$((rss + $(awk '/VmRSS/ {print $2}' /proc/$pid/status)))
	done
	echo "$ticks $rss"
}
etcd_ticks() { read -r -a st < /proc/$ETCD_PID/stat; echo $((st[13] + st[14])); }

echo "fleet guard: $SITES sites x $SERVICES services, min_announcing $MIN, one etcd ($(etcd --version | head -1)), $(nproc) CPUs"
t0=$(now_ms)
for i in $(seq 1 "$SITES"); do
	d=$W/site$i
	"$BIN" run -c "$d/config.toml" > "$d/log" 2>&1 &
	PIDS+=($!)
done
want=$((SITES * SERVICES))
until [ "$(count | cut -d' ' -f1)" = "$want" ]; do
	sleep 0.2
	[ $(($(now_ms) - t0)) -lt 300000 ] || { echo "not all announced after 300 s: $(count)" >&2; exit 1; }
done
echo "start: spawn -> all $want announced       $(($(now_ms) - t0)) ms"

sleep 10
HZ=$(getconf CLK_TCK)
r0=$(requests); c0=$(daemons_cpu_rss); e0=$(etcd_ticks); s0=$(now_ms)
sleep 30
r1=$(requests); c1=$(daemons_cpu_rss); e1=$(etcd_ticks); s1=$(now_ms)
secs=$(python3 -c "print(($s1 - $s0) / 1000)")
echo "steady ($secs s): etcd $(rate "$r0" "$r1" "$secs")"
python3 -c "
c0, c1 = '$c0'.split(), '$c1'.split()
print(f'steady: daemons CPU {(int(c1[0]) - int(c0[0])) / $HZ / $secs * 100:.1f} % of one core in all ({(int(c1[0]) - int(c0[0])) / $HZ / $secs * 100 / $SITES:.2f} % each), RSS {int(c1[1]) / 1024 / $SITES:.1f} MiB each; etcd CPU {($e1 - $e0) / $HZ / $secs * 100:.1f} %')"

# Fleet-wide failure.
r0=$(requests); e0=$(etcd_ticks)
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null || true; LISTENER_PID=
t0=$(now_ms)
fewest=$SITES
settled=
while :; do
	read -r total lo hi <<< "$(count)"
	if [ "$lo" -lt "$fewest" ]; then fewest=$lo; fi
	if [ "$lo" = "$MIN" ] && [ "$hi" = "$MIN" ]; then
		[ -z "$settled" ] && settled=$(($(now_ms) - t0))
		# Stable for 5 s more: nothing else withdraws.
		[ $(($(now_ms) - t0 - settled)) -ge 5000 ] && break
	else
		settled=
	fi
	[ $(($(now_ms) - t0)) -lt 120000 ] || { echo "not settled after 120 s: announcing $total, per service $lo-$hi" >&2; break; }
	sleep 0.2
done
t1=$(now_ms); r1=$(requests); e1=$(etcd_ticks)
secs=$(python3 -c "print(($t1 - $t0) / 1000)")
echo "fleet-wide failure: every service at exactly $MIN sites after ${settled:-never} ms; fewest announcing any service ever seen: $fewest (minimum $MIN)"
echo "fleet-wide failure ($secs s, incl. 5 s stable): etcd $(rate "$r0" "$r1" "$secs"); etcd CPU $(python3 -c "print(f'{($e1 - $e0) / $HZ / $secs * 100:.1f}')") %"

# The guard's decision latency, from the journals.
lat=$(for i in $(seq 1 "$SITES"); do
	for s in $(seq 1 "$SERVICES"); do
		"$BIN" history "svc$s" --json -c "$W/site$i/config.toml" 2>/dev/null | python3 -c '
import json, sys
at, first = {}, {}
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    at[r["seq"]] = r["at_ms"]
    if r["kind"] == "fleet_guard":
        g = r["record"]["FleetGuard"]
        t = g["transition_seq"]
        if t not in first:
            first[t] = (r["at_ms"], "granted" if "Granted" in g["answer"] else "held")
for t, (ms, answer) in first.items():
    if t in at:
        print(ms - at[t], answer)
'
	done
done)
echo "$lat" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
for answer in ("granted", "held", None):
    xs = sorted(int(r[0]) for r in rows if answer is None or r[1] == answer)
    if not xs:
        continue
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    name = answer or "all"
    print(f"guard decision latency ({name}, {len(xs)} answers): median {p(0.5)} ms, p99 {p(0.99)} ms, max {xs[-1]} ms")
'

# Recovery.
r0=$(requests)
listener_start
t0=$(now_ms)
until [ "$(count | cut -d' ' -f1)" = "$want" ]; do
	sleep 0.2
	[ $(($(now_ms) - t0)) -lt 120000 ] || { echo "not all announced again after 120 s: $(count)" >&2; break; }
done
t1=$(now_ms); r1=$(requests)
echo "recovery: listener back -> all $want announced   $((t1 - t0)) ms; etcd $(rate "$r0" "$r1" "$(python3 -c "print(($t1 - $t0) / 1000)")")"

# SIGTERM, ten sites at a time (a whole machine's worth of daemons at once would measure the
# fake vtysh's Python start-ups, not the daemons).
t0=$(now_ms)
codes=()
slowest=0
for ((i = 0; i < ${#PIDS[@]}; i += 10)); do
	b0=$(now_ms)
	batch=("${PIDS[@]:i:10}")
	for pid in "${batch[@]}"; do kill -TERM "$pid"; done
	for pid in "${batch[@]}"; do code=0; wait "$pid" || code=$?; codes+=("$code"); done
	if [ $(($(now_ms) - b0)) -gt "$slowest" ]; then slowest=$(($(now_ms) - b0)); fi
done
PIDS=()
echo "SIGTERM (ten at a time): all $SITES exited in $(($(now_ms) - t0)) ms, slowest batch $slowest ms; exit codes: $(printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}'); announcing afterwards: $(count | cut -d' ' -f1)"
