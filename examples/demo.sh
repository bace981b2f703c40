#!/usr/bin/env bash
# See anycastd work, on this machine, in about a minute once built (the first build compiles
# every dependency, a few minutes, with cargo's progress shown): a private FRR and a BGP peer
# in network namespaces (tests/testbed/testbed.sh), a Cabourotte emulator on 127.0.0.1:19013,
# and anycastd running the documented example (docs/configuration.md: dns in the default VRF,
# ntp in VRF 123). The demo shows what the peer receives while the dns check passes, fails
# and recovers, and after SIGTERM.
# Needs root (namespaces); installs frr and gobgpd with apt if they are missing. Touches
# nothing outside its namespaces, /tmp/acddemo and the processes it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }

missing=()
[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
command -v gobgpd > /dev/null || missing+=(gobgpd)
# Building needs protoc and protobuf's well-known types (the etcd client compiles etcd's protos).
command -v protoc > /dev/null || missing+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
if [ -x target/debug/anycastd ] && [ -x target/debug/examples/cabourotte_emulator ]; then
	echo "== building (up to date in seconds, or what changed)"
else
	echo "== building (the first build compiles every dependency: a few minutes)"
fi
cargo build --bin anycastd --example cabourotte_emulator
BIN=target/debug

export TB_NAME=acddemo TB_DIR=/tmp/acddemo TB_PEER=gobgp
D=$TB_DIR
daemon_pid= emulator_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2> /dev/null || true
	[ -n "$emulator_pid" ] && kill "$emulator_pid" 2> /dev/null || true
	tests/testbed/testbed.sh down
}
trap cleanup EXIT
tests/testbed/testbed.sh down 2> /dev/null || true
echo "== starting FRR and a BGP peer in namespaces $TB_NAME-*"
tests/testbed/testbed.sh up

mkdir -p "$D/checks"
for c in dns ntp_v4 ntp_v6; do echo pass > "$D/checks/$c"; done
"$BIN/examples/cabourotte_emulator" 127.0.0.1:19013 "$D/checks" v2 2> "$D/emulator.log" &
emulator_pid=$!

cat > "$D/config.toml" <<EOF
[journal]
path = "$D/journal"

[control]
socket = "$D/anycastd.sock"

[frrouting]
vtysh_args = ["--vty_socket", "$D/frr/run", "--config_dir", "$D/frr/etc"]

[services.dns]
prefixes.frrouting = ["2001:db8::b19:bad:53", "203.0.113.53"]
checks.cabourotte = [{ name = "dns", url = "http://127.0.0.1:19013", interval = 1 }]

[services.ntp]
prefixes.frrouting = [
    { prefix = "2001:db8::123:7e11:713e", vrf = "123" },
    { prefix = "203.0.113.123", vrf = "123" },
]
checks.cabourotte = [
    { name = "ntp_v6", url = "http://127.0.0.1:19013", interval = 1 },
    { name = "ntp_v4", url = "http://127.0.0.1:19013", interval = 1 },
]
EOF

routes() {
	for n in "192.0.2.1 ipv4 default" "2001:db8:ffff:1::1 ipv6 default" "192.0.2.5 ipv4 vrf-123" "2001:db8:ffff:2::1 ipv6 vrf-123"; do
		set -- $n
		ip netns exec "$TB_NAME-peer" gobgp neighbor "$1" adj-in -a "$2" -j |
			python3 -c "import json,sys; [print('   ', '$3', p) for p in json.load(sys.stdin)]"
	done
}
wait_count() {
	for _ in $(seq 100); do [ "$(routes | wc -l)" = "$1" ] && return 0; sleep 0.1; done
	echo "demo: expected $1 routes at the peer" >&2; return 1
}
show() {
	echo "== the BGP peer now receives:"
	local now
	now=$(routes)
	if [ -n "$now" ]; then echo "$now"; else echo "    (nothing)"; fi
	echo
}

echo "== anycastd run -c $D/config.toml   (log: $D/anycastd.log)"
"$BIN/anycastd" run -c "$D/config.toml" --log-format human --no-color > "$D/anycastd.log" 2>&1 &
daemon_pid=$!
wait_count 4; show

echo "== the dns check fails (echo 'fail resolver down' > $D/checks/dns)"
echo "fail resolver down" > "$D/checks/dns"
wait_count 2; show

echo "== the dns check passes again"
echo pass > "$D/checks/dns"
wait_count 4; show

echo "== SIGTERM"
kill -TERM "$daemon_pid"
code=0; wait "$daemon_pid" || code=$?
daemon_pid=
echo "anycastd exited with $code"
wait_count 0; show
echo "== anycastd's log:"
cat "$D/anycastd.log"
echo
echo "== what the journal says happened to dns (anycastd history dns):"
"$BIN/anycastd" history dns -c "$D/config.toml"
echo
echo "== and what fall = 5 would have done with the same check results (anycastd replay dns --fall 5):"
echo "   (the failure lasted until the peer saw the withdrawal, a few polls: fewer than 5 in a row)"
"$BIN/anycastd" replay dns --fall 5 -c "$D/config.toml"
