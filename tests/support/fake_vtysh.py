#!/usr/bin/env python3
"""A stand-in for vtysh that keeps FRR's `network` statements in a JSON state file.

    fake_vtysh.py --state FILE [-c LINE]...

It understands what anycastd sends: `show running-config bgpd`, `configure terminal`,
`router bgp ASN [vrf V]`, `address-family ipv4|ipv6 unicast`, `network P [route-map M]`,
`no network P`, route-maps (`route-map M permit 10`, its `set` lines, `exit`, `no route-map
M`), `exit-address-family`, `exit`, and `show bgp [vrf V] ipv4|ipv6 unicast P json` (a local
best path with what the prefix's map sets, FRR's MED 0 without one).
Like vtysh it stops at the first failing line (exit 1, error on stdout) and keeps what came
before; `no network` of an absent prefix fails with FRR's text; `router bgp` of an instance
that does not exist fails (the real one would create it: anycastd must never send that).
Environment: FAKE_VTYSH_DELAY (seconds to sleep before configuring), FAKE_VTYSH_LOG (a file
to append one line per call: time, pid, the lines), FAKE_VTYSH_HANG (a path: while it exists,
configuring calls hang, then fail without a change), FAKE_VTYSH_BGPD_DOWN (a path: while it exists, bgpd is "not
running": `show daemons` lacks it, the running config has no BGP, configuring fails),
FAKE_VTYSH_READ_HANG (a path: while it exists, calls that only read hang, as a slow bgpd's).
"""
import fcntl
import json
import os
import sys
import time


def main():
    args = sys.argv[1:]
    state_path = None
    lines = []
    i = 0
    while i < len(args):
        if args[i] == "--state":
            state_path = args[i + 1]
            i += 2
        elif args[i] == "-c":
            lines.append(args[i + 1])
            i += 2
        else:
            i += 1
    if state_path is None:
        print("fake vtysh: --state FILE is required")
        return 2
    log = os.environ.get("FAKE_VTYSH_LOG")
    if log:
        with open(log, "a") as f:
            f.write("%.6f %d %s\n" % (time.time(), os.getpid(), " | ".join(lines)))
    configuring = any(l.startswith("configure") for l in lines)
    delay = float(os.environ.get("FAKE_VTYSH_DELAY", "0") or 0)
    if configuring and delay > 0:
        time.sleep(delay)
    hang = os.environ.get("FAKE_VTYSH_HANG")
    if configuring and hang and os.path.exists(hang):
        # Hangs while the file exists, then fails without changing anything.
        while os.path.exists(hang):
            time.sleep(0.05)
        print("% fake vtysh: gave up")
        return 1
    read_hang = os.environ.get("FAKE_VTYSH_READ_HANG")
    if not configuring and read_hang:
        while os.path.exists(read_hang):
            time.sleep(0.05)
    down = os.environ.get("FAKE_VTYSH_BGPD_DOWN")
    if down and os.path.exists(down):
        if configuring:
            print("bgpd is not running")
            return 1
        for line in lines:
            if line == "show running-config bgpd":
                print("Building configuration...\n\nCurrent configuration:\n!\nend")
            elif line == "show daemons":
                print(" zebra staticd")
        return 0
    with open(state_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(state_path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {"instances": {"default": 65536, "123": 65537}, "networks": {}}
        code = run(state, lines)
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, state_path)
    return code


def shown(state, vrf, prefix):
    """`show bgp ... P json`: a local best path with what the prefix's map sets."""
    if prefix not in state["networks"].get(vrf, []):
        return {}
    path = {"aspath": {"string": "Local", "segments": [], "length": 0}, "metric": 0,
            "valid": True, "bestpath": {"overall": True}}
    name = state.get("network_maps", {}).get(vrf, {}).get(prefix)
    for set_line in state.get("maps", {}).get(name, [])[1:]:
        words = set_line.split()
        if words[:3] == ["set", "as-path", "prepend"]:
            asns = [int(a) for a in words[3:]]
            path["aspath"] = {"string": " ".join(words[3:]), "length": len(asns),
                              "segments": [{"type": "as-sequence", "list": asns}]}
        elif words[:2] == ["set", "metric"]:
            path["metric"] = int(words[2])
        elif words[:2] == ["set", "community"]:
            path["community"] = {"string": " ".join(words[2:-1])}
        elif words[:2] == ["set", "large-community"]:
            path["largeCommunity"] = {"string": " ".join(words[2:-1])}
    return {"prefix": prefix, "paths": [path]}


def run(state, lines):
    instance = None
    in_map = None
    for line in lines:
        words = line.split()
        if line == "show running-config bgpd":
            print("Building configuration...\n\nCurrent configuration:\n!")
            for vrf, asn in state["instances"].items():
                print("router bgp %d%s" % (asn, "" if vrf == "default" else " vrf " + vrf))
                nets = state["networks"].get(vrf, [])
                for afi in ("ipv4", "ipv6"):
                    print(" address-family %s unicast" % afi)
                    maps = state.get("network_maps", {}).get(vrf, {})
                    for net in nets:
                        if (":" in net) == (afi == "ipv6"):
                            print("  network %s%s" % (net, " route-map " + maps[net] if net in maps else ""))
                    print(" exit-address-family")
                print("exit\n!")
            for name, body in state.get("maps", {}).items():
                print("route-map %s %s" % (name, body[0]))
                for set_line in body[1:]:
                    print(" " + set_line)
                print("exit\n!")
            print("end")
        elif line == "show daemons":
            print(" zebra bgpd staticd")
        elif line == "show bgp vrf all summary json":
            # One established peer per instance and family.
            peer = {"peers": {"192.0.2.2": {"state": "Established"}}}
            print(json.dumps({vrf: {"ipv4Unicast": peer, "ipv6Unicast": peer}
                              for vrf in state["instances"]}))
        elif line.startswith("show bgp vrf all ") and line.endswith(" unicast json"):
            # Every configured network has a valid best path (no import check here).
            v6 = words[4] == "ipv6"
            print(json.dumps({vrf: {"routes": {net: [{"valid": True, "bestpath": True}]
                                               for net in state["networks"].get(vrf, [])
                                               if (":" in net) == v6}}
                              for vrf in state["instances"]}))
        elif words[:3] == ["show", "bgp", "vrf"] and len(words) == 8 and words[-1] == "json":
            print(json.dumps(shown(state, words[3], words[6])))
        elif words[:2] == ["show", "bgp"] and len(words) == 6 and words[-1] == "json":
            print(json.dumps(shown(state, "default", words[4])))
        elif line == "configure terminal" or line.startswith("address-family"):
            in_map = None
        elif words[:1] == ["route-map"] and len(words) == 4:
            in_map = words[1]
            state.setdefault("maps", {})[in_map] = [" ".join(words[2:])]
        elif words[:1] == ["set"] and in_map:
            state["maps"][in_map].append(line.strip())
        elif line in ("exit", "exit-address-family"):
            in_map = None
        elif words[:2] == ["no", "route-map"] and len(words) == 3:
            state.setdefault("maps", {}).pop(words[2], None)
        elif words[:2] == ["router", "bgp"]:
            vrf = words[4] if len(words) > 4 and words[3] == "vrf" else "default"
            if state["instances"].get(vrf) != int(words[2]):
                print("% fake vtysh: no such instance (the real vtysh would create it)")
                return 1
            instance = vrf
        elif words[:1] == ["network"] and instance:
            nets = state["networks"].setdefault(instance, [])
            if words[1] not in nets:
                nets.append(words[1])
            maps = state.setdefault("network_maps", {}).setdefault(instance, {})
            if words[2:3] == ["route-map"]:
                maps[words[1]] = words[3]
            else:
                maps.pop(words[1], None)
        elif words[:2] == ["no", "network"] and instance:
            nets = state["networks"].setdefault(instance, [])
            if words[2] not in nets:
                print("% Can't find static route specified")
                return 1
            nets.remove(words[2])
            state.setdefault("network_maps", {}).setdefault(instance, {}).pop(words[2], None)
        else:
            print("%% Unknown command: %s" % line)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
