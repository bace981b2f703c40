#!/bin/bash
# Time from bgpd accepting commands again (after a stop and a start, then `vtysh -b` as
# watchfrr does) until FRR has the README example's four networks again, with the anycastd
# binary given (default target/release/anycastd). Needs root, frr and gobgpd; uses its own
# testbed (tests/testbed/testbed.sh, namespaces acdms-*). BENCHMARKS.md has the figures.
# With WRAPPER=1 each prefix names a vtysh wrapper script (`exec vtysh --vty_socket DIR ...`)
# instead of `vtysh_args`, as the seed's per-prefix `vtysh` key allows.
#   [WRAPPER=1] benches/restart_repair.sh [ANYCASTD_BINARY]
set -e
BIN=${1:-$(dirname "$0")/../target/release/anycastd}
export TB_NAME=acdms TB_DIR=/tmp/acdms TB_BIRD=0
T=$(cd "$(dirname "$0")/.." && pwd)/tests/testbed/testbed.sh
$T up >/dev/null 2>&1
W=/tmp/acdms-w; rm -rf $W; mkdir -p $W
if [ "${WRAPPER:-0}" = 1 ]; then
	printf '#!/bin/sh\nexec /usr/bin/vtysh --vty_socket /tmp/acdms/frr/run --config_dir /tmp/acdms/frr/etc "$@"\n' > $W/vtysh
	chmod 755 $W/vtysh
	ARGS=
	V=", vtysh = \"$W/vtysh\""
else
	ARGS='vtysh_args = ["--vty_socket", "/tmp/acdms/frr/run", "--config_dir", "/tmp/acdms/frr/etc"]'
	V=
fi
cat > $W/config.toml <<EOT
[journal]
path = "$W/journal"
[control]
socket = "$W/ctl.sock"
[frrouting]
$ARGS
[services.dns]
prefixes.frrouting = [{ prefix = "2001:db8::b19:bad:53"$V }, { prefix = "203.0.113.53"$V }]
checks.exec = [{ name = "ok", command = "/bin/true", interval = "200ms" }]
[services.ntp]
prefixes.frrouting = [{ prefix = "2001:db8::123:7e11:713e", vrf = "123"$V }, { prefix = "203.0.113.123", vrf = "123"$V }]
checks.exec = [{ name = "ok", command = "/bin/true", interval = "200ms" }]
EOT
chmod 600 $W/config.toml
$BIN run -c $W/config.toml > $W/log 2>&1 &
PID=$!
count() { /usr/bin/vtysh --vty_socket /tmp/acdms/frr/run --config_dir /tmp/acdms/frr/etc -c 'show running-config bgpd' | grep -c ' network ' || true; }
for i in $(seq 100); do [ "$(count)" = 4 ] && break; sleep 0.1; done
sleep 5
$T stop-bgpd; sleep 2; $T start-bgpd
t0=$(date +%s%N)
/usr/bin/vtysh --vty_socket /tmp/acdms/frr/run --config_dir /tmp/acdms/frr/etc -b -d bgpd >/dev/null
for i in $(seq 1200); do [ "$(count)" = 4 ] && break; sleep 0.05; done
t1=$(date +%s%N)
echo "configured again $(( (t1 - t0) / 1000000 )) ms after bgpd accepted commands"
kill -TERM $PID; wait $PID || true
$T down >/dev/null 2>&1
