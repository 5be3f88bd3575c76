#!/usr/bin/env python3
"""Validates the Grafana dashboard (and the alert rules) against what the daemon exports.

  check_dashboard.py FAMILIES DASHBOARD.json RULES.yml

FAMILIES: the output of `cgroupctl stats --list-families` (`NAME TYPE` per line, from the
code: cgroup-core's metric table and the daemon's own counters). For every panel target and
template query of the dashboard, and every rule expression:
  - the PromQL must parse: each expression (Grafana variables replaced by plain values) is
    written as a recording rule into a temporary rules file that `promtool check rules` parses
    with Prometheus' own parser;
  - every metric it reads must be an exported family, or one of EXTERNAL (series that
    Prometheus or node_exporter make about the exporter itself, which the alerts on a
    missing exporter read).
Panels must keep a fleet's hosts apart: every aggregation groups by `instance` (`sum by
(instance, user)`, never `sum by (user)`, which adds up the same user of several hosts), and
every metric a panel reads is filtered by the dashboard's `$instance` variable.
Grafana's custom variables (the top-N count) are replaced by their current value, every other
variable by a regex matching everything.
Exit 1 with one line per problem.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "Inf", "NaN", "atan2",
}
# Not the daemon's, read by the alert rules on the exporter itself.
EXTERNAL = {
    "up": "Prometheus: 1 when the target's last scrape succeeded",
    "node_textfile_mtime_seconds": "node_exporter's textfile collector: when each .prom file was written",
}
GRAFANA_VARS = [
    (re.compile(r"\$__rate_interval|\$\{__rate_interval\}|\$__interval|\$\{__interval\}"), "5m"),
    (re.compile(r"\$\{?__range\}?"), "1h"),
    (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"), ".*"),
]


def plain(expr, custom=None):
    for name, value in (custom or {}).items():
        expr = re.sub(r"\$\{%s\}|\$%s\b" % (name, name), value, expr)
    for pattern, value in GRAFANA_VARS:
        expr = pattern.sub(value, expr)
    return expr


def metrics_of(expr):
    """The metric names an expression reads (labels, strings, functions and keywords out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if word in KEYWORDS or rest.startswith("("):
            continue
        names.add(word)
    return names


def label_values_metric(query):
    m = re.match(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", query)
    return m.group(1) if m else None


def expressions(dashboard, rules_text):
    """(where, expr) of every panel target, template query and rule expression."""
    out = []
    panels = list(dashboard.get("panels", []))
    while panels:
        p = panels.pop()
        panels.extend(p.get("panels", []))  # rows
        targets = p.get("targets", [])
        if p.get("type") != "row" and not targets:
            out.append((f"panel {p.get('title')!r}", None))
        for t in targets:
            out.append((f"panel {p.get('title')!r} target {t.get('refId')}", t.get("expr")))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            metric = label_values_metric(q or "")
            out.append((f"variable {v.get('name')!r}", metric if metric else q))
    for m in re.finditer(r"^\s*expr:\s*(.+)$", rules_text, re.M):
        out.append(("alert rule", m.group(1).strip()))
    return out


def per_host_problems(where, expr):
    """A panel expression that merges hosts or ignores the host picker."""
    out = []
    for m in re.finditer(r"\b(by|without)\s*\(([^)]*)\)", expr):
        labels = {l.strip() for l in m.group(2).split(",")}
        if m.group(1) == "by" and "instance" not in labels:
            out.append(f"{where}: groups by ({m.group(2)}) without instance: hosts of a fleet merge")
        if m.group(1) == "without" and "instance" in labels:
            out.append(f"{where}: aggregates instance away: hosts of a fleet merge")
    for m in re.finditer(r"\b(pam_cgroup_[A-Za-z0-9_:]*)(\{[^}]*\})?", expr):
        if "$instance" not in (m.group(2) or ""):
            out.append(f"{where}: {m.group(1)} is not filtered by instance=~\"$instance\"")
    return out


def custom_values(dashboard):
    """Current value of each custom or constant variable (name -> text)."""
    out = {}
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") in ("custom", "constant"):
            current = (v.get("current") or {}).get("value")
            if isinstance(current, list):
                current = current[0] if current else None
            if current is None:
                current = str(v.get("query", "")).split(",")[0].strip()
            out[v["name"]] = str(current)
    return out


def check(families_path, dashboard_path, rules_path):
    exported = {line.split()[0] for line in open(families_path) if line.strip()}
    if not exported:
        return ["no exported families listed"]
    exported |= set(EXTERNAL)
    dashboard = json.load(open(dashboard_path))
    custom = custom_values(dashboard)
    rules_text = open(rules_path).read()
    problems = []
    exprs = expressions(dashboard, rules_text)
    if not any(w.startswith("panel") for w, _ in exprs):
        problems.append("the dashboard has no panel")
    names = [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]
    if "instance" not in names:
        problems.append("the dashboard has no instance variable (a fleet's hosts cannot be told apart)")
    rules = []
    for where, expr in exprs:
        if not expr:
            problems.append(f"{where}: no PromQL expression")
            continue
        if where.startswith("panel"):
            problems.extend(per_host_problems(where, expr))
        expr = plain(expr, custom)
        unknown = sorted(metrics_of(expr) - exported)
        for name in unknown:
            problems.append(f"{where}: {name} is not a metric the daemon exports")
        if not metrics_of(expr):
            problems.append(f"{where}: reads no metric: {expr}")
        rules.append((where, expr))
    # Prometheus' own parser, one recording rule per expression; checked one by one so an
    # error names its panel.
    with tempfile.TemporaryDirectory() as tmp:
        for i, (where, expr) in enumerate(rules):
            path = os.path.join(tmp, f"r{i}.yml")
            with open(path, "w") as f:
                f.write("groups:\n  - name: dashboard\n    rules:\n")
                f.write(f"      - record: dashboard:check{i}\n        expr: {json.dumps(expr)}\n")
            r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
            if r.returncode != 0:
                why = (r.stdout + r.stderr).strip().splitlines()
                problems.append(f"{where}: PromQL does not parse: {expr}: {why[-1] if why else ''}")
    return problems


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(*sys.argv[1:])
    for p in problems:
        print(f"check_dashboard: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_dashboard: OK ({sys.argv[2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
