#!/usr/bin/env python3
"""The table of tests/bench/vm-ssh: wall time of `ssh USER true` per state and kind of login,
and the phases of each login read from the guest's journal (see vm-ssh for what is measured).

usage: vm_ssh_report.py LOGINS.jsonl JOURNAL CPUSTAT CONFINED GUEST OUT.json DEB "STATES"
"""
import collections
import json
import re
import statistics
import sys

logins_path, journal_path, cpustat_path, confined_path, guest_path, out_path, deb, states = sys.argv[1:9]
STATES = states.split()
logins = [json.loads(line) for line in open(logins_path)]


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ---- phases from the journal (short-unix: "<epoch.usec> <host> <ident>[<pid>]: <message>") ----
LINE = re.compile(r"^(\d+\.\d+) \S+ ([^\[:]+)(?:\[(\d+)\])?: (.*)$")
events = []
for line in open(journal_path, errors="replace"):
    m = LINE.match(line.rstrip("\n"))
    if m:
        events.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))

# One entry per sshd login, in journal order: the monitor's pid opens it.
journal_logins = collections.defaultdict(list)  # user -> [dict of phase times]
open_by_pid = {}
for i, (t, ident, pid, msg) in enumerate(events):
    if ident == "sshd":
        m = re.match(r"Accepted publickey for (\S+) from \S+ port (\d+)", msg)
        if m:
            rec = {"user": m.group(1), "port": m.group(2), "accepted": t, "monitor": pid}
            journal_logins[m.group(1)].append(rec)
            open_by_pid[pid] = rec
            continue
        rec = open_by_pid.get(pid)
        if rec and "pam_unix(sshd:session): session opened" in msg:
            rec["opened"] = t
        elif rec and "pam_unix(sshd:session): session closed" in msg:
            rec["closed"] = t
        elif rec and "pam_env(sshd:session): deprecated reading of user environment" in msg:
            # pam_env runs last but one in Debian's sshd session stack: the end of the open
            # part of the stack (pam_unix, pam_systemd, [pam_cgroup], pam_motd, pam_mail, ...)
            rec["stack_end"] = t
        elif rec and "pam_systemd(sshd:session): Failed to release session" in msg:
            rec["release_failed"] = t
        m = re.match(r"Received disconnect from \S+ port (\d+)", msg)
        if m:
            for r in open_by_pid.values():
                if r["port"] == m.group(1) and "disconnect" not in r:
                    r["disconnect"] = t
    elif ident == "systemd-logind":
        m = re.match(r"New session (\S+) of user (\S+)\.", msg)
        if m:
            for r in reversed(journal_logins.get(m.group(2), [])):
                if "session" not in r:
                    r["session"] = m.group(1)
                    r["logind_new"] = t
                break
        m = re.match(r"Removed session (\S+)\.", msg)
        if m:
            for rs in journal_logins.values():
                for r in rs:
                    if r.get("session") == m.group(1) and "removed" not in r:
                        r["removed"] = t
    elif ident == "systemd" and pid == "1":
        m = re.match(r"Started session-(\S+)\.scope", msg)
        if m:
            for rs in journal_logins.values():
                for r in rs:
                    if r.get("session") == m.group(1):
                        r["scope_started"] = t
        m = re.match(r"session-(\S+)\.scope: Deactivated successfully", msg)
        if m:
            for rs in journal_logins.values():
                for r in rs:
                    if r.get("session") == m.group(1):
                        r["scope_emptied"] = t

# Tag journal logins with their uid (from the records) before the manager events matter:
# done in a second pass, since "Starting user@UID" follows the Accepted line of its login.
uid_of = {lg["user"]: str(lg["uid"]) for lg in logins}
for name, rs in journal_logins.items():
    for r in rs:
        r["_uid"] = uid_of.get(name)
for t, ident, pid, msg in events:
    if ident == "systemd" and pid == "1":
        m = re.match(r"(Starting|Started) user@(\d+)\.service", msg)
        if not m:
            continue
        key = "manager_starting" if m.group(1) == "Starting" else "manager_started"
        cands = [r for rs in journal_logins.values() for r in rs
                 if r["_uid"] == m.group(2) and r["accepted"] <= t and key not in r]
        if cands:
            max(cands, key=lambda r: r["accepted"])[key] = t

# The records' logins of a user are its journal logins in the same order.
per_user_records = collections.defaultdict(list)
for lg in logins:
    per_user_records[lg["user"]].append(lg)
PHASES = [
    ("accepted->session opened", "accepted", "opened"),
    ("opened->scope started (pam_systemd)", "opened", "scope_started"),
    ("scope started->client disconnect", "scope_started", "disconnect"),
    ("scope started->pam_env (rest of the open stack)", "scope_started", "stack_end"),
    ("pam_env->client disconnect (the command)", "stack_end", "disconnect"),
    ("disconnect->pam session closed", "disconnect", "closed"),
    ("accepted->pam session closed", "accepted", "closed"),
    ("user@.service starting->started", "manager_starting", "manager_started"),
    ("scope started->scope emptied", "scope_started", "scope_emptied"),
]
for user, recs in per_user_records.items():
    jl = journal_logins.get(user, [])
    for rec, j in zip(recs, jl):
        rec["phases_ms"] = {name: round((j[b] - j[a]) * 1000, 1)
                            for name, a, b in PHASES if a in j and b in j}
        rec["pam_systemd_release_failed"] = "release_failed" in j

# CPU used during each login (from right before it to right after the client returned) by
# PID 1, logind, journald, dbus, our daemon, and by the whole guest.
for lg in logins:
    a = dict(kv.split("=") for kv in lg.get("cpu_before", "").split() if "=" in kv)
    b = dict(kv.split("=") for kv in lg.get("cpu_after", "").split() if "=" in kv)
    lg["cpu_ms"] = {k: int(b[k]) - int(a[k]) for k in b if k in a}

# ---- statistics ----
stats = {}
for s in STATES:
    for kind in ("first", "later"):
        xs = [lg["ms"] for lg in logins if lg["state"] == s and lg["kind"] == kind and lg["exit"] == 0]
        ph = collections.defaultdict(list)
        cpuk = collections.defaultdict(list)
        for lg in logins:
            if lg["state"] == s and lg["kind"] == kind:
                for k, v in lg.get("cpu_ms", {}).items():
                    cpuk[k].append(v)
        for lg in logins:
            if lg["state"] == s and lg["kind"] == kind:
                for k, v in lg.get("phases_ms", {}).items():
                    ph[k].append(v)
        stats.setdefault(s, {})[kind] = {
            "n": len(xs),
            "median_ms": round(pct(xs, 0.5), 1),
            "p90_ms": round(pct(xs, 0.9), 1),
            "failures": sum(1 for lg in logins if lg["state"] == s and lg["kind"] == kind and lg["exit"] != 0),
            "phases_median_ms": {k: round(statistics.median(v), 1) for k, v in ph.items()},
            "cpu_mean_ms": {k: round(statistics.mean(v), 1) for k, v in cpuk.items()},
        }
def baseline(state):
    """The state without the module that a state is compared with."""
    return "nosd_disabled" if state.startswith("nosd_") else "disabled"


for s in STATES:
    for kind in ("first", "later"):
        b = stats.get(baseline(s), {}).get(kind, {}).get("median_ms")
        stats[s][kind]["ratio_to_disabled"] = round(stats[s][kind]["median_ms"] / b, 3) if b else None
        stats[s][kind]["compared_with"] = baseline(s)

# Per round, each state's median over that round's logins of a kind against the disabled
# state's in the same round: a slow phase of the host hits both sides of a pair alike.
paired = {}
for s in STATES:
    for kind in ("first", "later"):
        ratios = []
        for r in sorted({lg["round"] for lg in logins if lg["state"] in STATES}):
            a = [lg["ms"] for lg in logins if lg["round"] == r and lg["state"] == s and lg["kind"] == kind]
            b = [lg["ms"] for lg in logins if lg["round"] == r and lg["state"] == baseline(s) and lg["kind"] == kind]
            if a and b:
                ratios.append(statistics.median(a) / statistics.median(b))
        stats[s][kind]["paired_ratio_median"] = round(statistics.median(ratios), 3) if ratios else None
        stats[s][kind]["paired_ratios"] = [round(x, 3) for x in ratios]

cpu = {}
for line in open(cpustat_path):
    p = line.split()
    if len(p) >= 7:
        cpu[p[0]] = {p[i]: int(p[i + 1]) for i in range(1, len(p) - 1, 2)}
throttle = {}
for s in STATES:
    users = sorted({lg["user"] for lg in logins if lg["state"] == s})
    n = sum(1 for lg in logins if lg["state"] == s)
    tu = [cpu[u]["throttled_usec"] for u in users if u in cpu]
    uu = [cpu[u]["usage_usec"] for u in users if u in cpu]
    throttle[s] = {
        "confined_users": len(tu),
        "throttled_ms_per_login": round(sum(tu) / 1000 / n, 1) if tu and n else 0.0,
        "cpu_ms_in_fence_per_login": round(sum(uu) / 1000 / n, 1) if uu and n else 0.0,
    }

guest = open(guest_path).read().split()
result = {
    "note": "one TCG guest boot (qemu -accel tcg, 2 vCPUs); wall time of a fresh `ssh USER true` on the host; "
            "states interleaved per round; kind = whether user@UID.service ran before the login",
    "deb": deb,
    "guest": " ".join(guest),
    "states": STATES,
    "stats": stats,
    "cpu_in_fence": throttle,
    "confined_users_in_tree": open(confined_path).read().split(),
    "logins": logins,
}
json.dump(result, open(out_path, "w"), indent=2)

print(f"VM ssh logins (TCG, {deb}; guest {result['guest']}): wall time of `ssh USER true`, ms")
print(f"{'state':14} {'kind':6} {'n':>3} {'median':>8} {'p90':>8} {'/disabled':>10} {'paired':>7}   "
      f"{'open->scope':>11} {'scope->env':>11} {'env->disc':>11} {'disc->close':>11} {'user@ start':>11} {'throttled/login':>15}")
for s in STATES:
    for kind in ("first", "later"):
        x = stats[s][kind]
        ph = x["phases_median_ms"]
        r = x["ratio_to_disabled"]
        pr = x.get("paired_ratio_median")
        g = lambda k: f"{ph[k]:11.0f}" if k in ph else f"{'-':>11}"
        print(f"{s:14} {kind:6} {x['n']:3d} {x['median_ms']:8.0f} {x['p90_ms']:8.0f} "
              f"{(f'{r:.3f}' if r else '-'):>10} {(f'{pr:.3f}' if pr else '-'):>7}   {g('opened->scope started (pam_systemd)')} "
              f"{g('scope started->pam_env (rest of the open stack)')} {g('pam_env->client disconnect (the command)')} "
              f"{g('disconnect->pam session closed')} "
              f"{g('user@.service starting->started')} {throttle[s]['throttled_ms_per_login']:15.1f}")
if any(lg.get("cpu_ms") for lg in logins):
    print()
    print("CPU time used during a login (ms, mean; from right before it to right after the client returned):")
    names = ["guest", "systemd", "logind", "journald", "dbus", "daemon"]
    print(f"{'state':14} {'kind':6} " + " ".join(f"{n:>9}" for n in names))
    for s in STATES:
        for kind in ("first", "later"):
            c = stats[s][kind]["cpu_mean_ms"]
            print(f"{s:14} {kind:6} " + " ".join(f"{c.get(n, float('nan')):9.0f}" for n in names))
fails = sum(x[k]["failures"] for x in stats.values() for k in x)
if fails:
    print(f"WARNING: {fails} logins failed (exit status != 0)")
print("/disabled: median over median (nosd_* states against nosd_disabled); paired: median over rounds of")
print("  (state's median / its baseline's median in the same round)")
print("phases (ms, medians, guest journal): open->scope = pam_unix's 'session opened' to logind's scope started (pam_systemd,")
print("  with user@.service's start for a first login); scope->env = the rest of the session stack up to pam_env")
print("  (pam_cgroup, pam_motd, ...); env->disc = the command and the client's disconnect; disc->close = pam_unix's close")
print("  (after the client left: not in the wall time); throttled/login: cpu.stat throttled_usec / the state's logins")
print(f"users with a cgroup in the tree: {' '.join(result['confined_users_in_tree']) or 'none'}")
print(f"written: {out_path}")
