#!/bin/bash
# anycastd's FRR test fixture: a real FRRouting (zebra, bgpd, staticd) and a real BGP peer
# (gobgpd or BIRD 2), each in its own network namespace, wired with veth pairs. Used by the
# integration tests (tests/support/testbed.rs), the demo and the benchmarks.
#
#   testbed.sh up | down | wait | restart-bgpd [--boot] | stop-bgpd | start-bgpd [--boot]
#              | vtysh ARGS... | peer ARGS...
#
# Environment: TB_NAME (namespace prefix, default acdtb), TB_DIR (state directory, default
# /tmp/$TB_NAME), TB_PEER (gobgp|bird, default gobgp), TB_BIRD (1: also a BIRD 2 as a local
# speaker, for anycastd's BIRD backend; needs TB_PEER=gobgp), TB_GOBGP (1: also a gobgpd as a
# local speaker, for anycastd's GoBGP backend; needs TB_PEER=gobgp).
#
#   testbed.sh restart-bird | stop-bird | start-bird [CONF] | birdc ARGS...   (with TB_BIRD=1)
#   testbed.sh restart-gobgp | stop-gobgp | start-gobgp [CONF] | gobgp ARGS... (with TB_GOBGP=1)
#
# Layout (addresses exist only inside the namespaces made here):
#   $N-r1   FRR, default VRF, AS 65536: r1-peer 192.0.2.1/30, 2001:db8:ffff:1::1/64
#   $N-vrf  the netns that FRR's netns VRF backend sees as VRF "123", AS 65537:
#           v123-peer 192.0.2.5/30, 2001:db8:ffff:2::1/64
#   $N-peer the peer, AS 65001: 192.0.2.2 / 2001:db8:ffff:1::2 and 192.0.2.6 / 2001:db8:ffff:2::2
#   $N-b1   (TB_BIRD=1) BIRD 2, AS 65538: b1-peer 192.0.2.9/30, 2001:db8:ffff:3::1/64, control
#           socket $D/bird/bird.ctl, static protocols anycastd4/anycastd6 including
#           $D/run-anycastd*/bird-anycastd{4,6}.conf, exported to the peer (192.0.2.10 and
#           2001:db8:ffff:3::2), and spare4 (IPv4, exported to no one)
#   $N-g1   (TB_GOBGP=1) gobgpd, AS 65539: g1-peer 192.0.2.13/30, 2001:db8:ffff:4::1/64, its gRPC
#           API at 127.0.0.1:50051 inside $N-g1, config $D/gobgp/gobgpd.toml, neighbours the
#           peer (192.0.2.14 ipv4-unicast, 2001:db8:ffff:4::2 ipv6-unicast)
# The README example's service addresses are put on lo of $N-r1 (dns) and $N-vrf (ntp), so
# FRR's default `bgp network import-check` finds them.
#
# FRR runs in a private mount namespace whose /run/netns holds only the VRF namespace, named
# "123": zebra -n would otherwise turn every namespace on the machine into a VRF.
set -euo pipefail

N=${TB_NAME:-acdtb}
D=${TB_DIR:-/tmp/$N}
PEER=${TB_PEER:-gobgp}
WITH_BIRD=${TB_BIRD:-0}
WITH_GOBGP=${TB_GOBGP:-0}
R=$D/frr
P=$D/peer
B=$D/bird
G=$D/gobgp

say() { echo "[testbed $N] $*" >&2; }
die() { say "error: $*"; exit 1; }
vt() { /usr/bin/vtysh --vty_socket "$R/run" --config_dir "$R/etc" "$@"; }

netns() {
	ip netns add "$1"
	# no duplicate address detection: IPv6 addresses (and link-locals, which bgpd waits for)
	# are usable at once
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip -n "$1" link set lo up
}

link() { # ns-a if-a ns-b if-b v4-a v4-b v6-a v6-b
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	ip -n "$1" addr add "$5" dev "$2"
	ip -n "$3" addr add "$6" dev "$4"
	ip -n "$1" addr add "$7" dev "$2" nodad
	ip -n "$3" addr add "$8" dev "$4" nodad
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

frr_instance() { # asn router-id vrf-suffix nbr4 nbr6
	cat <<EOF
router bgp $1$3
 bgp router-id $2
 no bgp ebgp-requires-policy
 timers bgp 3 9
 coalesce-time 100
 neighbor $4 remote-as external
 neighbor $4 timers connect 1
 neighbor $5 remote-as external
 neighbor $5 timers connect 1
 address-family ipv4 unicast
  redistribute static
  no neighbor $5 activate
 exit-address-family
 address-family ipv6 unicast
  redistribute static
  neighbor $5 activate
 exit-address-family
exit
!
EOF
}

write_frr() {
	mkdir -p "$R/etc" "$R/run"
	chown -R frr:frr "$R"
	chmod 0755 "$D" "$R"
	chmod 0775 "$R/etc" "$R/run"
	for d in zebra bgpd staticd; do install -o frr -g frr -m 0640 /dev/null "$R/etc/$d.conf"; done
	echo 'service integrated-vtysh-config' | install -o frr -g frrvty -m 0640 /dev/stdin "$R/etc/vtysh.conf"
	{
		frr_instance 65536 203.0.113.179 "" 192.0.2.2 2001:db8:ffff:1::2
		frr_instance 65537 203.0.113.180 " vrf 123" 192.0.2.6 2001:db8:ffff:2::2
	} | install -o frr -g frr -m 0640 /dev/stdin "$R/etc/frr.conf"
	cp "$R/etc/frr.conf" "$R/base.conf"
	cat > "$R/start.sh" <<EOF
#!/bin/bash
set -e
mkdir -p "$R/hold"; touch "$R/hold/123"
mount --bind /run/netns/$N-vrf "$R/hold/123"
mount -t tmpfs -o size=64k,mode=0755 $N-netns /run/netns
touch /run/netns/123
mount --bind "$R/hold/123" /run/netns/123
umount "$R/hold/123"
opts="-d -A 127.0.0.1 -P 0 --vty_socket $R/run -z $R/run/zserv.api"
/usr/lib/frr/zebra   \$opts -n -f $R/etc/zebra.conf   -i $R/run/zebra.pid   --log file:$R/zebra.log
/usr/lib/frr/bgpd    \$opts    -f $R/etc/bgpd.conf    -i $R/run/bgpd.pid    --log file:$R/bgpd.log
/usr/lib/frr/staticd \$opts    -f $R/etc/staticd.conf -i $R/run/staticd.pid --log file:$R/staticd.log
EOF
	chmod +x "$R/start.sh"
	printf '#!/bin/sh\nexec /usr/bin/vtysh --vty_socket "%s/run" --config_dir "%s/etc" "$@"\n' "$R" "$R" > "$D/vtysh"
	chmod +x "$D/vtysh"
}

start_peer() {
	mkdir -p "$P"
	if [ "$PEER" = gobgp ]; then
		{
			printf '[global.config]\n  as = 65001\n  router-id = "192.0.2.2"\n'
			# a sink: never pass one FRR instance's routes to the other
			printf '[global.apply-policy.config]\n  default-import-policy = "accept-route"\n  default-export-policy = "reject-route"\n'
			neighbors=("192.0.2.1 65536 ipv4" "2001:db8:ffff:1::1 65536 ipv6" "192.0.2.5 65537 ipv4" "2001:db8:ffff:2::1 65537 ipv6")
			if [ "$WITH_BIRD" = 1 ]; then neighbors+=("192.0.2.9 65538 ipv4" "2001:db8:ffff:3::1 65538 ipv6"); fi
			if [ "$WITH_GOBGP" = 1 ]; then neighbors+=("192.0.2.13 65539 ipv4" "2001:db8:ffff:4::1 65539 ipv6"); fi
			for n in "${neighbors[@]}"; do
				set -- $n
				printf '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "%s"\n    peer-as = %s\n' "$1" "$2"
				printf '  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n'
				printf '  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "%s-unicast"\n' "$3"
			done
		} > "$P/gobgpd.toml"
		ip netns exec "$N-peer" gobgpd -f "$P/gobgpd.toml" -p --api-hosts 127.0.0.1:50051 --pprof-disable \
			> "$P/gobgpd.log" 2>&1 < /dev/null &
		echo $! > "$P/gobgpd.pid"
		for _ in $(seq 100); do ip netns exec "$N-peer" gobgp neighbor > /dev/null 2>&1 && return 0; sleep 0.05; done
		die "gobgpd did not start: $(tail -3 "$P/gobgpd.log")"
	else
		{
			echo 'router id 192.0.2.2;'
			echo 'protocol device { }'
			for n in "r1_v4 192.0.2.2 192.0.2.1 65536 ipv4" "r1_v6 2001:db8:ffff:1::2 2001:db8:ffff:1::1 65536 ipv6" \
				"vrf_v4 192.0.2.6 192.0.2.5 65537 ipv4" "vrf_v6 2001:db8:ffff:2::2 2001:db8:ffff:2::1 65537 ipv6"; do
				set -- $n
				echo "protocol bgp $1 { local $2 as 65001; neighbor $3 as $4;"
				echo "  hold time 9; keepalive time 3; connect retry time 1; error wait time 1, 5; error forget time 10;"
				echo "  $5 { import all; export none; }; }"
			done
		} > "$P/bird.conf"
		ip netns exec "$N-peer" bird -c "$P/bird.conf" -s "$P/bird.ctl" -P "$P/bird.pid"
		for _ in $(seq 100); do birdc -s "$P/bird.ctl" show status > /dev/null 2>&1 && return 0; sleep 0.05; done
		die "bird did not start"
	fi
}

# The local BIRD that anycastd's BIRD backend drives.
write_bird() {
	mkdir -p "$B" "$D/run-anycastd"
	cat > "$B/bird.conf" <<EOF
router id 203.0.113.181;
protocol device { }
protocol static anycastd4 {
  ipv4;
include "$D/run-anycastd*/bird-anycastd4.conf";
}
protocol static anycastd6 {
  ipv6;
include "$D/run-anycastd*/bird-anycastd6.conf";
}
protocol static spare4 {
  ipv4;
include "$D/run-anycastd*/bird-spare4.conf";
}
protocol bgp peer_v4 {
  local 192.0.2.9 as 65538; neighbor 192.0.2.10 as 65001;
  hold time 9; keepalive time 3; connect retry time 1; error wait time 1, 5;
  ipv4 { import none; export where proto = "anycastd4"; };
}
protocol bgp peer_v6 {
  local 2001:db8:ffff:3::1 as 65538; neighbor 2001:db8:ffff:3::2 as 65001;
  hold time 9; keepalive time 3; connect retry time 1; error wait time 1, 5;
  ipv6 { import none; export where proto = "anycastd6"; };
}
EOF
}

cmd_start_bird() { # [CONF] (default: the testbed's own bird.conf)
	ip netns exec "$N-b1" bird -c "${1:-$B/bird.conf}" -s "$B/bird.ctl" -P "$B/bird.pid"
	for _ in $(seq 100); do birdc -s "$B/bird.ctl" show status > /dev/null 2>&1 && return 0; sleep 0.05; done
	die "local bird did not start"
}
cmd_stop_bird() { stop_pid "$B/bird.pid" bird; }

# The local gobgpd that anycastd's GoBGP backend drives.
write_gobgp() {
	mkdir -p "$G"
	{
		printf '[global.config]\n  as = 65539\n  router-id = "192.0.2.13"\n'
		for n in "192.0.2.14 ipv4" "2001:db8:ffff:4::2 ipv6"; do
			set -- $n
			printf '[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "%s"\n    peer-as = 65001\n' "$1"
			printf '  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n'
			printf '  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "%s-unicast"\n' "$2"
		done
	} > "$G/gobgpd.toml"
}

cmd_start_gobgp() { # [CONF] (default: the testbed's own gobgpd.toml)
	ip netns exec "$N-g1" gobgpd -f "${1:-$G/gobgpd.toml}" -p --api-hosts 127.0.0.1:50051 --pprof-disable \
		>> "$G/gobgpd.log" 2>&1 < /dev/null &
	echo $! > "$G/gobgpd.pid"
	for _ in $(seq 100); do ip netns exec "$N-g1" gobgp global > /dev/null 2>&1 && return 0; sleep 0.05; done
	die "local gobgpd did not start: $(tail -3 "$G/gobgpd.log")"
}
cmd_stop_gobgp() { stop_pid "$G/gobgpd.pid" gobgpd; }

established() {
	if [ "$PEER" = gobgp ]; then
		ip netns exec "$N-peer" gobgp neighbor 2>/dev/null | grep -c ' Establ ' || true
	else
		birdc -s "$P/bird.ctl" show protocols 2>/dev/null | grep -c Established || true
	fi
}

sessions() { echo $((4 + (WITH_BIRD == 1 ? 2 : 0) + (WITH_GOBGP == 1 ? 2 : 0))); }

cmd_wait() {
	local want; want=$(sessions)
	for _ in $(seq 600); do
		[ "$(established)" -ge "$want" ] && return 0
		sleep 0.1
	done
	die "BGP sessions not Established after 60 s"
}

cmd_up() {
	[ "$(id -u)" = 0 ] || die "needs root"
	[ ! -e "/run/netns/$N-r1" ] || die "namespace $N-r1 exists: another testbed uses the name $N"
	rm -rf "$D"; mkdir -p "$D"
	[ "$WITH_BIRD" != 1 ] || [ "$PEER" = gobgp ] || die "TB_BIRD=1 needs TB_PEER=gobgp"
	[ "$WITH_GOBGP" != 1 ] || [ "$PEER" = gobgp ] || die "TB_GOBGP=1 needs TB_PEER=gobgp"
	netns "$N-r1"; netns "$N-vrf"; netns "$N-peer"
	link "$N-r1" r1-peer "$N-peer" peer-r1 192.0.2.1/30 192.0.2.2/30 2001:db8:ffff:1::1/64 2001:db8:ffff:1::2/64
	link "$N-vrf" v123-peer "$N-peer" peer-v123 192.0.2.5/30 192.0.2.6/30 2001:db8:ffff:2::1/64 2001:db8:ffff:2::2/64
	if [ "$WITH_BIRD" = 1 ]; then
		netns "$N-b1"
		link "$N-b1" b1-peer "$N-peer" peer-b1 192.0.2.9/30 192.0.2.10/30 2001:db8:ffff:3::1/64 2001:db8:ffff:3::2/64
	fi
	if [ "$WITH_GOBGP" = 1 ]; then
		netns "$N-g1"
		link "$N-g1" g1-peer "$N-peer" peer-g1 192.0.2.13/30 192.0.2.14/30 2001:db8:ffff:4::1/64 2001:db8:ffff:4::2/64
	fi
	ip -n "$N-r1" addr add 203.0.113.53/32 dev lo
	ip -n "$N-r1" addr add 2001:db8::b19:bad:53/128 dev lo nodad
	ip -n "$N-vrf" addr add 203.0.113.123/32 dev lo
	ip -n "$N-vrf" addr add 2001:db8::123:7e11:713e/128 dev lo nodad
	start_peer
	if [ "$WITH_BIRD" = 1 ]; then write_bird; cmd_start_bird; fi
	if [ "$WITH_GOBGP" = 1 ]; then write_gobgp; cmd_start_gobgp; fi
	write_frr
	ip netns exec "$N-r1" unshare --mount --propagation private "$R/start.sh"
	for _ in $(seq 100); do [ -S "$R/run/bgpd.vty" ] && [ -S "$R/run/staticd.vty" ] && break; sleep 0.05; done
	vt -b > "$R/boot.log" 2>&1 || die "vtysh -b failed: $(cat "$R/boot.log")"
	cmd_wait
	say "up (vtysh: $D/vtysh)"
}

stop_pid() { # pidfile process-name
	[ -r "$1" ] || return 0
	local pid; pid=$(cat "$1")
	if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break; sleep 0.1; done
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

cmd_down() {
	stop_pid "$R/run/staticd.pid" staticd
	stop_pid "$R/run/bgpd.pid" bgpd
	stop_pid "$R/run/zebra.pid" zebra
	stop_pid "$P/gobgpd.pid" gobgpd
	stop_pid "$P/bird.pid" bird
	stop_pid "$B/bird.pid" bird
	stop_pid "$G/gobgpd.pid" gobgpd
	for n in "$N-peer" "$N-vrf" "$N-r1" "$N-b1" "$N-g1"; do [ -e "/run/netns/$n" ] && ip netns del "$n"; done
	return 0
}

# A bgpd crash and restart: the runtime config is lost; with --boot the saved frr.conf is
# applied again with `vtysh -b`, as watchfrr does.
cmd_restart_bgpd() {
	local zebra; zebra=$(cat "$R/run/zebra.pid")
	stop_pid "$R/run/bgpd.pid" bgpd
	nsenter --target "$zebra" --net --mount /usr/lib/frr/bgpd -d -A 127.0.0.1 -P 0 \
		--vty_socket "$R/run" -z "$R/run/zserv.api" -f "$R/etc/bgpd.conf" -i "$R/run/bgpd.pid" --log "file:$R/bgpd.log"
	for _ in $(seq 100); do vt -d bgpd -c 'show version' > /dev/null 2>&1 && break; sleep 0.05; done
	if [ "${1:-}" = --boot ]; then vt -b -d bgpd > "$R/boot.log" 2>&1 || die "vtysh -b: $(cat "$R/boot.log")"; fi
}

# bgpd dies and stays down (stop-bgpd); start-bgpd [--boot] brings it back.
cmd_stop_bgpd() { stop_pid "$R/run/bgpd.pid" bgpd; }
cmd_start_bgpd() {
	local zebra; zebra=$(cat "$R/run/zebra.pid")
	nsenter --target "$zebra" --net --mount /usr/lib/frr/bgpd -d -A 127.0.0.1 -P 0 \
		--vty_socket "$R/run" -z "$R/run/zserv.api" -f "$R/etc/bgpd.conf" -i "$R/run/bgpd.pid" --log "file:$R/bgpd.log"
	for _ in $(seq 100); do vt -d bgpd -c 'show version' > /dev/null 2>&1 && break; sleep 0.05; done
	if [ "${1:-}" = --boot ]; then vt -b -d bgpd > "$R/boot.log" 2>&1 || die "vtysh -b: $(cat "$R/boot.log")"; fi
}

case "${1:-}" in
	up) cmd_up ;;
	stop-bgpd) cmd_stop_bgpd ;;
	start-bgpd) shift; cmd_start_bgpd "$@" ;;
	down) cmd_down ;;
	wait) cmd_wait ;;
	restart-bgpd) shift; cmd_restart_bgpd "$@" ;;
	stop-bird) cmd_stop_bird ;;
	start-bird) shift; cmd_start_bird "$@" ;;
	restart-bird) cmd_stop_bird; cmd_start_bird ;;
	birdc) shift; birdc -s "$B/bird.ctl" "$@" ;;
	stop-gobgp) cmd_stop_gobgp ;;
	start-gobgp) shift; cmd_start_gobgp "$@" ;;
	restart-gobgp) cmd_stop_gobgp; cmd_start_gobgp ;;
	gobgp) shift; ip netns exec "$N-g1" gobgp "$@" ;;
	vtysh) shift; vt "$@" ;;
	peer) shift
		if [ "$PEER" = gobgp ]; then ip netns exec "$N-peer" gobgp "$@"; else birdc -s "$P/bird.ctl" "$@"; fi ;;
	*) echo "usage: $0 up|down|wait|restart-bgpd [--boot]|vtysh ARGS|peer ARGS" >&2; exit 2 ;;
esac
