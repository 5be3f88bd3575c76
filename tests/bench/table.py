#!/usr/bin/env python3
"""Prints the benchmark table and the goal ratios from target/bench/results.json.

Every login figure is given twice: wall time (what a user waits for) and the thread's CPU time
(user + system; on a host loaded by other work, waiting for a CPU inflates the wall time of
whichever stack happened to run then, not its CPU time). The goals are judged on both."""
import json
import sys

r = json.load(open(sys.argv[1]))
NAN = float("nan")

ROWS = [("floor A: pam_permit.so alone", "floor_a"),
        ("floor B: raw syscalls of the tree", "floor_b"),
        ("NSS floor: B + getpwnam + grouplist", "floor_nss"),
        ("NSS floor, no groups: B + getpwnam", "floor_nss_nogroups"),
        ("pam_cgroup.so, no plan group", "ours_noplan")]
ROWS += [(f"pam_cgroup.so, {n} users", f"ours_users_{n}") for n in (10, 1000, 10000)]
ROWS += [("baseline build's module, 10 users", "baseline_users_10")]


def stat(key, phase, clock, s="median_us"):
    x = r[key].get(phase + ("_cpu" if clock == "cpu" else ""))
    return x[s] if x else NAN


def table(clock):
    if clock == "wall":
        mode = r.get("session_process", "shared")
        print("each session in a process of its own (as sshd)" if mode == "own"
              else "all sessions in one process (BENCH_FORK=0)")
    print(f"{clock} time          {'open med':>18} {'p90':>8} {'p99':>8} {'close med':>10} {'p90':>8} {'p99':>8} {'start+end':>10}")
    for label, key in ROWS:
        if key not in r or r[key].get("open" + ("_cpu" if clock == "cpu" else "")) is None:
            continue
        print(f"{label:36} {stat(key, 'open', clock):9.1f} {stat(key, 'open', clock, 'p90_us'):8.1f} "
              f"{stat(key, 'open', clock, 'p99_us'):8.1f} {stat(key, 'close', clock):10.1f} "
              f"{stat(key, 'close', clock, 'p90_us'):8.1f} {stat(key, 'close', clock, 'p99_us'):8.1f} "
              f"{stat(key, 'start_end', clock):10.1f}")


def oc(key, clock):
    return stat(key, "open", clock) + stat(key, "close", clock)


def goals(clock):
    out = []
    permit = oc("floor_a", clock)
    ours = oc("ours_users_10", clock)
    if "floor_nss" in r:
        # Issue 17: the module's added cost against the added cost of the work it cannot avoid
        # (the floors are that work alone, in-process, so they stand for "floor - permit").
        out.append(("(ours - permit) / (NSS floor - permit), o+c", (ours - permit) / oc("floor_nss", clock), 1.5))
    out.append(("pam_start+pam_end: ours / pam_permit",
                stat("ours_users_10", "start_end", clock) / stat("floor_a", "start_end", clock), 2.0))
    out.append(("open at 10,000 users / at 10 users",
                stat("ours_users_10000", "open", clock) / stat("ours_users_10", "open", clock), 1.2))
    return out


def informative(clock):
    permit = oc("floor_a", clock)
    ours = oc("ours_users_10", clock)
    print(f"  (ours - permit) / floor B, o+c: {(ours - permit) / oc('floor_b', clock):.3f} "
          "(floor B has no NSS; the pre-issue-17 ratio)")
    if "ours_noplan" in r and "floor_nss_nogroups" in r:
        print(f"  no plan group: (ours - permit) / (NSS floor without groups - permit), o+c: "
              f"{(oc('ours_noplan', clock) - permit) / oc('floor_nss_nogroups', clock):.3f}")
    if "baseline_users_10" in r:
        base = oc("baseline_users_10", clock)
        print(f"  baseline build, same rounds: open+close {base:.1f} us (ours {ours:.1f}), start+end "
              f"{stat('baseline_users_10', 'start_end', clock):.1f} us (ours {stat('ours_users_10', 'start_end', clock):.1f})")
        if "floor_nss" in r:
            print(f"  baseline: (base - permit) / (NSS floor - permit), o+c: {(base - permit) / oc('floor_nss', clock):.3f}")
        print(f"  baseline: pam_start+pam_end base / pam_permit: "
              f"{stat('baseline_users_10', 'start_end', clock) / stat('floor_a', 'start_end', clock):.3f}")
        print(f"  baseline: (base - permit) / floor B, o+c: {(base - permit) / oc('floor_b', clock):.3f}")


for clock in ("wall", "cpu"):
    table(clock)
    print()
print("(microseconds, warm-up excluded; the 10-user rows and the floors are medians over interleaved")
print(" rounds; 'pam_cgroup.so' rows: limits, a plan group, private IPs enabled, N existing user")
print(" cgroups and user files; floors: the work itself, in-process without libpam)")
print()

rows = [(f"{name} [{clock}]", value, target) for clock in ("wall", "cpu") for name, value, target in goals(clock)]
c = r["concurrent_200"]
rows.append(("200 concurrent logins: failures", c["failures"], 0))
if "cgroupctl_stats_10000_s" in r:
    rows.append(("cgroupctl stats at 10,000 users (s)", r["cgroupctl_stats_10000_s"], 2.0))
bpf = r.get("bpf")
if isinstance(bpf, dict):
    for op in ("bind", "connect"):
        rows.append((f"private IP {op} loop with/without", bpf[f"{op}_ratio"], 1.10))
        if bpf.get(f"{op}_program_ns") is not None:
            kernel = (bpf[f"{op}_without_ns"] + bpf[f"{op}_program_ns"]) / bpf[f"{op}_without_ns"]
            rows.append((f"private IP {op}: in-kernel program cost ratio", kernel, 1.10))
net = r.get("net")
if isinstance(net, dict):
    for fam in ("v4", "v6"):
        rows.append((f"traffic counters: loopback TCP {fam} time ratio", net[f"{fam}_ratio"], 1.05))
        if net.get(f"{fam}_kernel_ratio") is not None:
            rows.append((f"traffic counters {fam}: in-kernel cost ratio", net[f"{fam}_kernel_ratio"], 1.05))
print(f"{'goal':51} {'measured':>10} {'target':>8}  met")
for name, value, target in rows:
    print(f"{name:51} {value:10.3f} {'<= ' + str(target):>8}  {'yes' if value <= target else 'NO'}")
print(f"200 concurrent logins: open p99 (worst process) {c['open_p99_us_max']:.0f} us")
for clock in ("wall", "cpu"):
    print(f"{clock} time:")
    informative(clock)
if "cgroupctl_list_10000_s" in r:
    print(f"cgroupctl list at 10,000 users: {r['cgroupctl_list_10000_s']:.2f} s (no goal)")
if "ours_noplan" in r:
    nss = stat("ours_users_10", "open", "wall") - stat("ours_noplan", "open", "wall")
    print(f"NSS group lookup (getgrouplist and the group names for the plan group) costs {nss:.0f} us of open here")
