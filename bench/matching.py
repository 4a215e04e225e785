"""Section (c): how many events per second rule matching handles, without HTTP or a store.

It times `Engine.plan`, the exact call the receiver makes for every accepted event:
build the template context, select candidates through the `RuleIndex` trie, check
each candidate's `match`, `exclude` and `if`, and snapshot the matching rules into
new runs. Three rule sets show where the index helps and where it cannot:

- `by_source`: every team posts to its own source and its rules name it (best case);
- `spread`: five sources, Artifactory's event kinds, rules told apart by a glob on
  the image or repository (a large installation);
- `per_image`: one rule per image, all for Docker pushes (worst case: every rule is a
  candidate for every push).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from bench import workload
from hookwise.builtin.artifactory import artifact_of
from hookwise.config import Config
from hookwise.engine import Engine
from hookwise.event import Event, new_id
from hookwise.matcher import RuleIndex
from hookwise.rules import Rule
from hookwise.store import open_store
from hookwise.templates import make_environment

EventMaker = Callable[[random.Random, int, int], tuple[str, str, str, dict[str, Any]]]
RuleMaker = Callable[[int, int], list[dict[str, Any]]]
WORKLOADS: dict[str, tuple[RuleMaker, EventMaker]] = {
    "by_source": (workload.by_source_rules, workload.by_source_event),
    "spread": (workload.spread_rules, workload.spread_event),
    "per_image": (workload.per_image_rules, workload.per_image_event),
}
DISTINCT_EVENTS = 2000
MIN_EVENTS = 3


def engine_for(rules: list[dict[str, Any]]) -> Engine:
    """Only `rules` and `templates` take part in planning; the store is never opened."""
    index = RuleIndex([Rule.model_validate(rule) for rule in rules])
    store = open_store("sqlite:///:memory:")
    return Engine(Config(), {}, {}, make_environment(), store, index)


def events(maker: EventMaker, count: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    made = []
    for seq in range(DISTINCT_EVENTS):
        source, domain, event_type, data = maker(rng, count, seq)
        made.append(
            Event(
                id=new_id(),
                source=source,
                kind="artifactory",
                domain=domain,
                event_type=event_type,
                delivery_id=None,
                received_at=time.time(),
                data=data,
                artifacts=[artifact_of(data, "https://jfrog.example.com")],
            )
        )
    return made


def timed(
    engine: Engine, pool: list[Event], seconds: float, at_least: int = MIN_EVENTS
) -> tuple[int, int, float]:
    """(events planned, runs planned, elapsed): round-robin until `seconds` have passed."""
    planned = runs = 0
    started = time.perf_counter()
    for event in itertools.cycle(pool):
        runs += len(engine.plan(event))
        planned += 1
        if planned >= at_least and time.perf_counter() - started >= seconds:
            break
    return planned, runs, time.perf_counter() - started


def measure(name: str, count: int, seconds: float) -> dict[str, Any]:
    make_rules, make_event = WORKLOADS[name]
    engine = engine_for(make_rules(count, 1))
    pool = events(make_event, count, 2)
    sample = [event.as_dict() for event in pool[:200]]
    candidates = sum(len(engine.rules.candidates(event)) for event in sample) / len(sample)
    timed(engine, pool, seconds / 10, 1)  # warm up
    planned, runs, elapsed = timed(engine, pool, seconds)
    return {
        "workload": name,
        "rules": count,
        "events": planned,
        "seconds": round(elapsed, 3),
        "events_per_s": round(planned / elapsed, 1),
        "candidates_per_event": round(candidates, 1),
        "matches_per_event": round(runs / planned, 2),
    }


def run(counts: list[int], seconds: float) -> dict[str, Any]:
    """Every workload at every rule count; each rate also relative to the fewest rules."""
    results = []
    for name in WORKLOADS:
        rows = [measure(name, count, seconds) for count in counts]
        for row in rows:
            row["ratio_to_fewest_rules"] = round(row["events_per_s"] / rows[0]["events_per_s"], 3)
        results.extend(rows)
    return {"seconds_per_measurement": seconds, "results": results}
