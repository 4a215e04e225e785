"""The benchmark's one command: `python -m bench.run [--quick] [--store ...]`.

It runs the sections of docs/performance.md, prints a table with each target next to
its measured value, and writes everything to a JSON file. Sections (a), (b), (d) and
(f) run once per store; (e) runs the baselines once and hookwise on each store; (c)
and (g) need no store of their own and run once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import (
    claims,
    ingest,
    latency,
    matching,
    memory,
    pace,
    report,
    rule_memory,
    servers,
    stores,
    workload,
)

RESULTS = Path(__file__).parent / "results" / "latest.json"
SERVER_RULES = 100  # besides the probe rule: rules the load is matched against and misses


@dataclass
class Settings:
    rate: float = 1000.0
    duration: float = 30.0
    saturate: float = 10.0
    probe_rate: float = 10.0
    idle_probes: int = 200
    idle_rate: float = 10.0
    rules: tuple[int, ...] = (10, 100, 1000, 10_000)
    match_seconds: float = 2.0
    events: int = 1_000_000
    stream_events: int = 20_000
    stream_rate: float = 500.0
    pace_seconds: float = 10.0
    pace_rate: float = 500.0
    pace_workers: int = 1
    backlogs: tuple[int, ...] = (100, 100_000)
    rule_count: int = 10_000
    sections: str = "abcdefg"


HELP = {
    "rate": "deliveries/s offered in (a) and in (b) under load",
    "duration": "seconds at that rate, per endpoint",
    "saturate": "seconds of the closed-loop phase of (a), per endpoint",
    "probe_rate": "probes/s in (b) under load",
    "idle_probes": "probes in (b) idle",
    "idle_rate": "probes/s in (b) idle",
    "match_seconds": "seconds of matching per workload and rule count in (c)",
    "events": "events in the store at the end of (d)",
    "stream_events": "deliveries over HTTP at each checkpoint of (d)",
    "stream_rate": "deliveries/s of those streams",
    "pace_seconds": "seconds of wrk per endpoint, and of the open-loop phase, in (e)",
    "pace_rate": "deliveries/s offered in the backlog phase of (e)",
    "pace_workers": "worker processes of the second hookwise variant in (e)",
    "rule_count": "rules loaded in (g)",
    "sections": "which sections to run, e.g. ac",
}
QUICK = {
    "rate": 200.0,
    "duration": 1.0,
    "saturate": 0.5,
    "probe_rate": 5.0,
    "idle_probes": 10,
    "idle_rate": 20.0,
    "match_seconds": 0.05,
    "events": 2000,
    "stream_events": 200,
    "stream_rate": 200.0,
    "pace_seconds": 1.0,
    "pace_rate": 100.0,
    "backlogs": (100, 2000),
    "rule_count": 500,
}


def parse(argv: list[str] | None) -> tuple[Settings, list[str], Path]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    parser.add_argument(
        "--store",
        action="append",
        help="sqlite, or a postgresql:// URL; repeatable. Default: sqlite, and "
        f"{stores.DEFAULT_POSTGRESQL} when hookwise supports it and it answers",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--rules", help="comma-separated rule counts for (c)")
    parser.add_argument("--backlogs", help="comma-separated due-run counts for (f)")
    for name, value in asdict(Settings()).items():
        if name in HELP:
            option = f"--{name.replace('_', '-')}"
            parser.add_argument(option, type=type(value), help=f"{HELP[name]} (full run: {value})")
    args = parser.parse_args(argv)
    settings = Settings(**(QUICK if args.quick else {}))
    for name in HELP:
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    if args.rules:
        settings.rules = tuple(int(count) for count in args.rules.split(","))
    if args.backlogs:
        settings.backlogs = tuple(int(count) for count in args.backlogs.split(","))
    return settings, args.store or ["sqlite", stores.DEFAULT_POSTGRESQL], args.out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine(loadavg_before: str) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit or None,
        "loadavg_before": loadavg_before,
        "loadavg_after": _loadavg(),
    }


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def run_store(
    store: str, settings: Settings, folder: Path, sink: servers.Process
) -> dict[str, Any]:
    """Sections (a), (b) and (d) against one store kind, each hookwise on a fresh store."""
    result: dict[str, Any] = {}
    rules = workload.server_rules(sink.url, SERVER_RULES)

    @contextlib.contextmanager
    def hookwise(name: str) -> Iterator[tuple[servers.Process, str]]:
        with (
            stores.fresh(store, folder / name) as url,
            servers.hookwise(folder / name, url, rules) as process,
        ):
            yield process, url

    if "a" in settings.sections or "b" in settings.sections:
        with hookwise("hookwise") as (process, _):
            traffic = workload.Traffic()
            if "b" in settings.sections:
                say(f"(b) idle: {settings.idle_probes} probes at {settings.idle_rate:g}/s")
                result["idle"] = await latency.idle(
                    process, sink.url, traffic, settings.idle_probes, settings.idle_rate
                )
            if "a" in settings.sections:
                say(f"(a) hookwise serve: {settings.rate:g}/s for {settings.duration:g} s")
                result["ingest"] = {"hookwise": await _ingest(process, settings)}
            if "b" in settings.sections:
                say(f"(b) under load: probes at {settings.probe_rate:g}/s")
                await ingest.warm_up(process, traffic, settings.rate, settings.duration)
                result["under_load"] = await latency.under_load(
                    process,
                    sink.url,
                    traffic,
                    settings.rate,
                    settings.duration,
                    settings.probe_rate,
                )
    if "f" in settings.sections:
        say(f"(f) claim cost with {', '.join(map(str, settings.backlogs))} runs due")
        result["claims"] = await claims.run(store, folder, list(settings.backlogs))
    if "d" in settings.sections:
        say(f"(d) memory: {settings.events:,} events, {settings.stream_events:,} over HTTP each")
        with hookwise("memory") as (process, url):
            result["memory"] = await memory.run(
                process, url, settings.events, settings.stream_events, settings.stream_rate
            )
    return result


async def _ingest(process: servers.Process, settings: Settings) -> dict[str, Any]:
    return await ingest.measure(
        process, workload.Traffic(), settings.rate, settings.duration, settings.saturate
    )


async def run(settings: Settings, requested: list[str], folder: Path) -> dict[str, Any]:
    loadavg = _loadavg()
    started = time.monotonic()
    found: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {**asdict(settings), "stores": requested},
        "baseline": None,
        "stores": {},
        "skipped_stores": {},
    }
    if "c" in settings.sections:
        say(f"(c) matching: {', '.join(map(str, settings.rules))} rules")
        found["matching"] = matching.run(list(settings.rules), settings.match_seconds)
    usable = []
    for url in requested:
        reason = stores.unusable(stores.sqlite_url(folder) if url == "sqlite" else url)
        if reason:
            say(f"store {url}: SKIPPED, {reason}")
            found["skipped_stores"][url] = reason
        else:
            usable.append(url)
    if "g" in settings.sections:
        say(f"(g) memory per rule: {settings.rule_count:,} rules")
        found["rule_memory"] = rule_memory.run(folder / "rule-memory", settings.rule_count)
    if usable and set(settings.sections) & set("abdef"):
        with servers.helper("sink", folder) as sink:
            if "a" in settings.sections:
                say(f"(a) bare Starlette endpoint: {settings.rate:g}/s")
                with servers.helper("baseline", folder) as baseline:
                    found["baseline"] = await _ingest(baseline, settings)
            for url in usable:
                store_folder = folder / url.split(":")[0]
                found["stores"][url] = await run_store(url, settings, store_folder, sink)
            if "e" in settings.sections:
                reason = pace.available()
                if reason:
                    say(f"(e) saturation: SKIPPED, {reason}")
                    found["pace_skipped"] = reason
                else:
                    say(f"(e) saturation: wrk for {settings.pace_seconds:g} s per endpoint")
                    found["pace"] = await pace.run(
                        usable,
                        folder,
                        sink,
                        settings.pace_seconds,
                        settings.pace_rate,
                        settings.pace_workers,
                    )
    found["machine"] = machine(loadavg)
    found["seconds"] = round(time.monotonic() - started, 1)
    found["targets"] = [
        target
        for url, result in found["stores"].items()
        for target in report.store_targets(url, result, found["baseline"])
    ] + (report.matching_targets(found["matching"]) if "matching" in found else [])
    found["targets"] += report.pace_targets(found.get("pace"))
    found["targets"] += report.rule_memory_targets(found.get("rule_memory"))
    return found


def main(argv: list[str] | None = None) -> int:
    settings, requested, out = parse(argv)
    with tempfile.TemporaryDirectory(prefix="hookwise-bench-") as folder:
        found = asyncio.run(run(settings, requested, Path(folder)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found, indent=2) + "\n")
    print(report.render(found))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
