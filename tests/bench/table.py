#!/usr/bin/env python3
"""Prints the benchmark table and the goal ratios from target/bench/results.json."""
import json
import sys

r = json.load(open(sys.argv[1]))


def oc(key):
    x = r[key]
    return x["open"]["median_us"], x["close"]["median_us"]


rows = [("floor A: pam_permit.so alone", "floor_a"), ("floor B: raw syscalls of the tree", "floor_b")]
rows += [("NSS floor: B + getpwnam + grouplist", "floor_nss"), ("NSS floor, no groups: B + getpwnam", "floor_nss_nogroups")]
rows += [("pam_cgroup.so, no plan group", "ours_noplan")]
rows += [(f"pam_cgroup.so, {n} users", f"ours_users_{n}") for n in (10, 1000, 10000)]
print(f"{'configuration':34} {'open med':>9} {'p90':>8} {'p99':>8} {'close med':>10} {'p90':>8} {'p99':>8} {'start+end':>10}")
for label, key in rows:
    if key not in r:
        continue
    x = r[key]
    se = x.get("start_end")
    print(f"{label:34} {x['open']['median_us']:9.1f} {x['open']['p90_us']:8.1f} {x['open']['p99_us']:8.1f} "
          f"{x['close']['median_us']:10.1f} {x['close']['p90_us']:8.1f} {x['close']['p99_us']:8.1f} "
          f"{(se['median_us'] if se else float('nan')):10.1f}")
print("(microseconds over the iterations, warm-up excluded; 'pam_cgroup.so' rows: limits, a plan")
print(" group, private IPs enabled, N existing user cgroups and user files; floors: the work")
print(" itself, in-process without libpam, so 'NSS floor' stands for 'NSS floor - pam_permit')")
print()

goals = []
a_open, a_close = oc("floor_a")
b_open, b_close = oc("floor_b")
o_open, o_close = oc("ours_users_10")
above_a = (o_open + o_close) - (a_open + a_close)
if "floor_nss" in r:
    # Issue 17: the module's added cost against the added cost of the work it cannot avoid.
    n_open, n_close = oc("floor_nss")
    goals.append(("(ours - permit) / (NSS floor - permit), o+c", above_a / (n_open + n_close), 1.5))
goals.append(("pam_start+pam_end: ours / pam_permit",
              r["ours_users_10"]["start_end"]["median_us"] / r["floor_a"]["start_end"]["median_us"], 2.0))
goals.append(("open at 10,000 users / at 10 users",
              r["ours_users_10000"]["open"]["median_us"] / o_open, 1.2))
c = r["concurrent_200"]
goals.append(("200 concurrent logins: failures", c["failures"], 0))
if "cgroupctl_stats_10000_s" in r:
    goals.append(("cgroupctl stats at 10,000 users (s)", r["cgroupctl_stats_10000_s"], 2.0))
bpf = r.get("bpf")
if isinstance(bpf, dict):
    for op in ("bind", "connect"):
        goals.append((f"private IP {op} loop with/without", bpf[f"{op}_ratio"], 1.10))
        if bpf.get(f"{op}_program_ns") is not None:
            kernel = (bpf[f"{op}_without_ns"] + bpf[f"{op}_program_ns"]) / bpf[f"{op}_without_ns"]
            goals.append((f"private IP {op}: in-kernel program cost ratio", kernel, 1.10))
print(f"{'goal':44} {'measured':>10} {'target':>8}  met")
for name, value, target in goals:
    ok = value <= target
    print(f"{name:44} {value:10.3f} {'<= ' + str(target):>8}  {'yes' if ok else 'NO'}")
print(f"200 concurrent logins: open p99 (worst process) {c['open_p99_us_max']:.0f} us")
print(f"(ours - permit) / floor B, open+close: {above_a / (b_open + b_close):.2f} (no goal: floor B has no NSS)")
noplan = r.get("ours_noplan")
if noplan and "floor_nss_nogroups" in r:
    np_open, np_close = oc("ours_noplan")
    g_open, g_close = oc("floor_nss_nogroups")
    print(f"no plan group: (ours - permit) / (NSS floor without groups - permit), open+close: "
          f"{((np_open + np_close) - (a_open + a_close)) / (g_open + g_close):.2f}")
if "cgroupctl_list_10000_s" in r:
    print(f"cgroupctl list at 10,000 users: {r['cgroupctl_list_10000_s']:.2f} s (no goal)")
noplan = r.get("ours_noplan")
if noplan:
    nss = r["ours_users_10"]["open"]["median_us"] - noplan["open"]["median_us"]
    print(f"NSS group lookup (getgrouplist for the plan group) costs {nss:.0f} us of open here")
