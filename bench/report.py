"""The report: the issue's targets judged against the numbers, and the table people read.

The JSON file keeps everything measured; the table shows the numbers a reader needs
to compare runs, each target next to its measured value.
"""

from __future__ import annotations

from typing import Any

P99_ACCEPT_MS = 25.0
RATE_RATIO = 0.5
P99_IDLE_MS = 50.0
MATCH_RATE = 20_000.0
MATCH_RULES = 10_000
SATURATION_BARE = 0.5  # (e): durable accept at saturation, x the bare endpoint
SATURATION_WEBHOOK = 1.5  # ... and x adnanh/webhook
SATURATION_POSTGRES = 0.6  # PostgreSQL's saturation, x SQLite's
COMPLETION = 0.9  # runs completed per run accepted at steady state
BACKLOG_GROWTH = 0.05  # of the offered rate: more growth per second is unbounded
CLAIM_FLAT = 1.5  # claim time at the largest backlog, x at the smallest
RULE_BYTES = 4096


def _ratio(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 3) if part and whole else None


def _target(section: str, where: str, target: str, measured: str, met: bool) -> dict[str, Any]:
    return {"section": section, "where": where, "target": target, "measured": measured, "met": met}


def store_targets(store: str, result: dict[str, Any], baseline: dict | None) -> list[dict]:
    found = []
    ingest = result.get("ingest")
    if ingest and baseline:
        ours = ingest["hookwise"]["fixed_rate"]
        ratio = _ratio(ours["achieved_per_s"], baseline["fixed_rate"]["achieved_per_s"]) or 0.0
        p99 = ours["p99_ms"]
        found.append(
            _target(
                "a",
                store,
                f">= {RATE_RATIO:.0%} of the bare rate, p99 < {P99_ACCEPT_MS:g} ms "
                f"at {ours['offered_per_s']:g}/s offered",
                f"{ratio:.0%} of bare, p99 {p99} ms",
                ratio >= RATE_RATIO and p99 is not None and p99 < P99_ACCEPT_MS,
            )
        )
    idle = result.get("idle")
    if idle:
        p99 = idle["start"]["p99_ms"]
        met = p99 is not None and p99 < P99_IDLE_MS and idle["started"] == idle["accepted"]
        measured = f"p99 {p99} ms ({idle['started']} of {idle['accepted']} started)"
        found.append(_target("b", store, f"p99 < {P99_IDLE_MS:g} ms idle", measured, met))
    if claimed := result.get("claims"):
        rows = claimed["rows"]
        found.append(
            _target(
                "f",
                store,
                f"claim time at {rows[-1]['backlog']:,} due runs <= {CLAIM_FLAT:g}x "
                f"at {rows[0]['backlog']:,}",
                f"{rows[0]['claim_ms']} ms, {rows[-1]['claim_ms']} ms ({claimed['ratio']}x)",
                claimed["ratio"] <= CLAIM_FLAT,
            )
        )
    memory = result.get("memory")
    if memory:
        first, last = memory["checkpoints"][0], memory["checkpoints"][-1]
        found.append(
            _target(
                "d",
                store,
                "RSS flat in the number of events stored",
                f"{first['rss_mib']} MiB at {first['stored']:,} events, "
                f"{last['rss_mib']} MiB at {last['stored']:,}",
                memory["flat"],
            )
        )
    return found


def matching_targets(matching: dict[str, Any]) -> list[dict]:
    rows = [row for row in matching["results"] if row["rules"] == MATCH_RULES]
    return [
        _target(
            "c",
            row["workload"],
            f">= {MATCH_RATE:,.0f} events/s at {MATCH_RULES:,} rules",
            f"{row['events_per_s']:,.0f} events/s",
            row["events_per_s"] >= MATCH_RATE,
        )
        for row in rows
    ]


def pace_targets(pace: dict[str, Any] | None) -> list[dict]:
    if not pace:
        return []
    found = []
    bare, webhook = pace["bare"]["per_s"], (pace["webhook"] or {}).get("per_s")
    sqlite_best = max(
        (r["per_s"] for r in pace["hookwise"].values() if r["store"] == "sqlite"), default=None
    )
    for label, result in pace["hookwise"].items():
        ours = result["per_s"]
        ratio, versus = _ratio(ours, bare) or 0.0, _ratio(ours, webhook)
        target = f">= {SATURATION_BARE:g}x bare" + (
            f", >= {SATURATION_WEBHOOK:g}x adnanh/webhook" if webhook else ""
        )
        met = ratio >= SATURATION_BARE and (versus is None or versus >= SATURATION_WEBHOOK)
        measured = f"{ours:,.0f}/s: {ratio}x bare" + (f", {versus}x webhook" if webhook else "")
        found.append(_target("e", label, target, measured, met))
        if result["store"] != "sqlite" and sqlite_best:
            share = _ratio(ours, sqlite_best) or 0.0
            found.append(
                _target(
                    "e",
                    label,
                    f">= {SATURATION_POSTGRES:g}x SQLite's saturation",
                    f"{share}x",
                    share >= SATURATION_POSTGRES,
                )
            )
        queue = result["backlog"]
        completion = queue["completion_ratio"] or 0.0
        found.append(
            _target(
                "e",
                label,
                f"runs completed >= {COMPLETION:g}x accepted at {queue['offered_per_s']:g}/s "
                "offered",
                f"{completion}x ({queue['completed_during']:,} of {queue['accepted']:,})",
                completion >= COMPLETION,
            )
        )
        limit = BACKLOG_GROWTH * queue["offered_per_s"]
        deepest = max(queue["backlog_samples"], default=0)
        found.append(
            _target(
                "e",
                label,
                f"backlog bounded at {queue['offered_per_s']:g}/s offered (grows < {limit:g}/s)",
                f"grows {queue['backlog_growth_per_s']}/s, at most {deepest:,}",
                queue["backlog_growth_per_s"] < limit,
            )
        )
    return found


def rule_memory_targets(memory: dict[str, Any] | None) -> list[dict]:
    if not memory:
        return []
    per_rule = memory["bytes_per_rule"]
    return [
        _target(
            "g",
            f"{memory['rules']:,} rules",
            f"<= {RULE_BYTES:,} bytes of RSS per loaded rule",
            f"{per_rule:,} bytes",
            per_rule <= RULE_BYTES,
        )
    ]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ingest_rows(endpoints: list[dict[str, Any]], baseline: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for result in endpoints:
        fixed, closed = result["fixed_rate"], result["closed_loop"]
        rows.append(
            [
                result["endpoint"],
                fixed["achieved_per_s"],
                _ratio(fixed["achieved_per_s"], baseline["fixed_rate"]["achieved_per_s"]),
                fixed["p50_ms"],
                fixed["p99_ms"],
                fixed["server_cpu_percent"],
                fixed["client_lag_p99_ms"],
                closed["achieved_per_s"],
                _ratio(closed["achieved_per_s"], baseline["closed_loop"]["achieved_per_s"]),
            ]
        )
    return rows


def _latency_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name in ("idle", "under_load"):
        if found := result.get(name):
            start, sink = found["start"], found["sink"]
            rows.append(
                [
                    name.replace("_", " "),
                    f"{found['probe_rate_per_s']:g}/s",
                    f"{found['started']}/{found['accepted']}",
                    start["p50_ms"],
                    start["p99_ms"],
                    sink["p50_ms"],
                    sink["p99_ms"],
                    found["load"]["p99_ms"] if "load" in found else None,
                ]
            )
    return rows


def _pace_table(pace: dict[str, Any]) -> str:
    bare = pace["bare"]["per_s"]
    endpoints = [("bare Starlette", pace["bare"])]
    if pace["webhook"]:
        endpoints.append(("adnanh/webhook", pace["webhook"]))
    endpoints += [(f"hookwise, {label}", result) for label, result in pace["hookwise"].items()]
    headers = ["endpoint", "req/s", "x bare", "p50 ms", "p99 ms", "CPU %", "completed x"]
    headers += ["drain s", "backlog growth/s", "completed x at pace"]
    rows = [
        [
            name,
            f"{result['per_s']:,.0f}",
            _ratio(result["per_s"], bare),
            result["p50_ms"],
            result["p99_ms"],
            result["server_cpu_percent"],
            result.get("completion_ratio"),
            result.get("drain_seconds"),
            result["backlog"]["backlog_growth_per_s"] if "backlog" in result else None,
            result["backlog"]["completion_ratio"] if "backlog" in result else None,
        ]
        for name, result in endpoints
    ]
    title = (
        f"\n(e) saturation: wrk, {pace['connections']} connections, {pace['seconds']:g} s each "
        "(completed x: runs completed during it per delivery accepted); "
        f"pace: {pace['rate']:g}/s offered, open loop"
    )
    return title + "\n" + table(headers, rows)


def render(report: dict[str, Any]) -> str:
    """The human-readable report, section by section, targets last."""
    machine = report["machine"]
    out = [
        f"hookwise benchmark, {report['started_at']}, {machine['cpus']} CPUs, "
        f"Python {machine['python']}, load average {machine['loadavg_before']} before, "
        f"{machine['loadavg_after']} after, {report['seconds']:.0f} s",
    ]
    baseline = report.get("baseline")
    for store, result in report["stores"].items():
        out.append(f"\n== store: {store}")
        if "ingest" in result and baseline:
            offered = baseline["fixed_rate"]["offered_per_s"]
            out.append(
                f"\n(a) durable accept of signed Artifactory deliveries, {offered:g}/s offered"
            )
            endpoints = [baseline, *result["ingest"].values()]
            headers = ["endpoint", "accepted/s", "x bare", "p50 ms", "p99 ms", "server CPU %"]
            headers += ["client lag p99 ms", "max/s closed loop", "x bare"]
            out.append(table(headers, _ingest_rows(endpoints, baseline)))
        if rows := _latency_rows(result):
            out.append(
                "\n(b) from the 202 to the action starting, and to its request reaching the sink"
            )
            headers = ["when", "probes", "started", "start p50 ms", "start p99 ms"]
            headers += ["sink p50 ms", "sink p99 ms", "accept p99 ms meanwhile"]
            out.append(table(headers, rows))
        if memory := result.get("memory"):
            out.append(
                f"\n(d) RSS of hookwise serve and store size, {memory['events']:,} events "
                f"(RSS {memory['rss_at_start_mib']} MiB at start)"
            )
            headers = ["stored", "over HTTP", "RSS MiB", "peak MiB", "store MiB", "B/event"]
            headers += ["stream p99 ms"]
            rows = [
                [
                    f"{c['stored']:,}",
                    f"{c['received_over_http']:,}",
                    c["rss_mib"],
                    c["peak_rss_mib"],
                    c["store_mib"],
                    c["store_bytes_per_event"],
                    c["stream"]["p99_ms"],
                ]
                for c in memory["checkpoints"]
            ]
            out.append(table(headers, rows))
    for store, reason in report["skipped_stores"].items():
        out.append(f"\n== store: {store}: SKIPPED, {reason}")
    if matching := report.get("matching"):
        out.append("\n(c) rule matching in-process (Engine.plan), events/s")
        headers = ["workload", "rules", "events/s", "x fewest rules", "candidates/event"]
        headers += ["matches/event"]
        rows = [
            [
                r["workload"],
                f"{r['rules']:,}",
                f"{r['events_per_s']:,.0f}",
                r["ratio_to_fewest_rules"],
                r["candidates_per_event"],
                r["matches_per_event"],
            ]
            for r in matching["results"]
        ]
        out.append(table(headers, rows))
    if pace := report.get("pace"):
        out.append(_pace_table(pace))
    if rule_memory := report.get("rule_memory"):
        out.append(
            f"\n(g) RSS per loaded rule: {rule_memory['rss_few_mib']} MiB with few rules, "
            f"{rule_memory['rss_many_mib']} MiB with {rule_memory['rules']:,} more: "
            f"{rule_memory['bytes_per_rule']:,} bytes per rule"
        )
    for store, result in report["stores"].items():
        if claimed := result.get("claims"):
            out.append(f"\n(f) one claim of {claimed['limit']} runs, {store}")
            rows = [[f"{r['backlog']:,}", r["claim_ms"]] for r in claimed["rows"]]
            out.append(table(["runs due", "ms per claim"], rows))
    out.append("\nTargets")
    rows = [
        [t["section"], t["where"], t["target"], t["measured"], "met" if t["met"] else "MISSED"]
        for t in report["targets"]
    ]
    out.append(table(["", "where", "target", "measured", ""], rows))
    return "\n".join(out)
