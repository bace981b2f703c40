#!/usr/bin/env python3
"""A stand-in for vtysh that keeps FRR's `network` statements in a JSON state file.

    fake_vtysh.py --state FILE [-c LINE]...

It understands what anycastd sends: `show running-config bgpd`, `configure terminal`,
`router bgp ASN [vrf V]`, `address-family ipv4|ipv6 unicast`, `network P`, `no network P`.
Like vtysh it stops at the first failing line (exit 1, error on stdout) and keeps what came
before; `no network` of an absent prefix fails with FRR's text; `router bgp` of an instance
that does not exist fails (the real one would create it: anycastd must never send that).
Environment: FAKE_VTYSH_DELAY (seconds to sleep before configuring), FAKE_VTYSH_LOG (a file
to append one line per call: time, pid, the lines), FAKE_VTYSH_HANG (a path: while it exists,
configuring calls hang, then fail without a change), FAKE_VTYSH_BGPD_DOWN (a path: while it exists, bgpd is "not
running": `show daemons` lacks it, the running config has no BGP, configuring fails).
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


def run(state, lines):
    instance = None
    for line in lines:
        words = line.split()
        if line == "show running-config bgpd":
            print("Building configuration...\n\nCurrent configuration:\n!")
            for vrf, asn in state["instances"].items():
                print("router bgp %d%s" % (asn, "" if vrf == "default" else " vrf " + vrf))
                nets = state["networks"].get(vrf, [])
                for afi in ("ipv4", "ipv6"):
                    print(" address-family %s unicast" % afi)
                    for net in nets:
                        if (":" in net) == (afi == "ipv6"):
                            print("  network %s" % net)
                    print(" exit-address-family")
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
        elif line == "configure terminal" or line.startswith("address-family"):
            pass
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
        elif words[:2] == ["no", "network"] and instance:
            nets = state["networks"].setdefault(instance, [])
            if words[2] not in nets:
                print("% Can't find static route specified")
                return 1
            nets.remove(words[2])
        else:
            print("%% Unknown command: %s" % line)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
