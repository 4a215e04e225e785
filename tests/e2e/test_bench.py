"""The benchmark suite runs end to end and reports every section with sane values.

Speed is not asserted here: the numbers belong to the benchmark (docs/performance.md),
and this machine is shared. The run is the real command with tiny sizes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "--rate": "100",
    "--duration": "1",
    "--saturate": "0.5",
    "--probe-rate": "5",
    "--idle-probes": "5",
    "--events": "400",
    "--stream-events": "50",
    "--stream-rate": "100",
    "--match-seconds": "0.02",
    "--pace-seconds": "1",
    "--pace-rate": "50",
    "--backlogs": "50,500",
    "--rule-count": "500",
}


def positive(*values: object) -> bool:
    return all(isinstance(v, int | float) and v > 0 for v in values)


def test_quick_run_reports_every_section_with_sane_values(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--quick", "--store", "sqlite", "--out", str(out)]
    argv += [item for pair in TINY.items() for item in pair]
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["skipped_stores"] == {}
    assert list(report["stores"]) == ["sqlite"]
    result = report["stores"]["sqlite"]

    # (a): the bare endpoint and hookwise accepted everything offered.
    endpoints = [report["baseline"], *result["ingest"].values()]
    assert [e["endpoint"] for e in endpoints] == ["baseline", "hookwise"]
    for endpoint in endpoints:
        fixed, closed = endpoint["fixed_rate"], endpoint["closed_loop"]
        assert fixed["sent"] == 100 and fixed["accepted"] == 100, fixed
        assert positive(fixed["achieved_per_s"], fixed["p50_ms"], fixed["p99_ms"])
        assert fixed["p50_ms"] <= fixed["p99_ms"] <= fixed["max_ms"]
        assert positive(closed["accepted"], closed["achieved_per_s"])

    # (b): every probe's action started, idle and under load.
    under_load = result["under_load"]
    for probes in (result["idle"], under_load):
        assert probes["probes"] == probes["accepted"] == probes["started"] > 0, probes
        assert probes["reached_sink"] == probes["accepted"], probes
        for delay in (probes["start"], probes["sink"]):
            assert delay["p50_ms"] <= delay["p99_ms"] <= delay["max_ms"], probes
        # the request reaches the sink after the attempt starts
        assert probes["sink"]["p50_ms"] >= probes["start"]["p50_ms"], probes

    # (d): the store grew to each checkpoint, and RSS and size were read at each.
    memory = result["memory"]
    checkpoints = memory["checkpoints"]
    assert [c["fraction"] for c in checkpoints] == [0.1, 0.5, 1.0]
    assert [c["stored"] for c in checkpoints] == [40, 200, 400]
    assert [c["received_over_http"] for c in checkpoints] == [40, 90, 140]
    for checkpoint in checkpoints:
        assert positive(checkpoint["rss_mib"], checkpoint["store_mib"])
        assert checkpoint["peak_rss_mib"] >= checkpoint["rss_mib"]
    assert isinstance(memory["flat"], bool)

    # (c): every workload at every rule count.
    rows = report["matching"]["results"]
    assert {(r["workload"], r["rules"]) for r in rows} == {
        (workload, count)
        for workload in ("by_source", "spread", "per_image")
        for count in (10, 100, 1000, 10_000)
    }
    assert all(positive(r["events_per_s"], r["events"]) for r in rows)

    # (e): both baselines and both ways of running hookwise; every run completed.
    pace = report["pace"]
    assert positive(pace["bare"]["per_s"], pace["webhook"]["per_s"]), "CI installs webhook"
    assert list(pace["hookwise"]) == ["sqlite, runs in serve", "sqlite, 1 worker process"]
    for variant in pace["hookwise"].values():
        assert positive(variant["accepted"], variant["per_s"], variant["end_to_end_per_s"])
        assert variant["completed"] >= variant["accepted"], variant
        steady = variant["backlog"]
        assert steady["accepted"] == 50, steady
        assert 0 <= steady["completed_during"] <= 50, steady
        assert steady["completion_ratio"] == round(steady["completed_during"] / 50, 3), steady

    # (f): one claim timed at each backlog; (g): RSS read with few and many rules.
    claims = result["claims"]
    assert [row["backlog"] for row in claims["rows"]] == [50, 500]
    assert all(positive(row["claim_ms"]) for row in claims["rows"])
    rule_memory = report["rule_memory"]
    assert rule_memory["rules"] == 500
    assert rule_memory["rss_many_mib"] > rule_memory["rss_few_mib"] > 0

    assert {t["section"] for t in report["targets"]} == set("abcdefg")
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    for heading in ("(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "Targets"):
        assert heading in done.stdout
