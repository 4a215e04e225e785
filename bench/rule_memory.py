"""Section (g): resident memory per loaded rule, in a real `hookwise serve`.

Two servers start on the same configuration, one with `FEW` rules and one with
`FEW + count` rules of section (c)'s `spread` kind; the difference in RSS, divided by
`count`, is what one more rule costs a running hookwise (its model, compiled globs and
templates, and its place in the index).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bench import servers, stores, workload

FEW = 10
SETTLE = 1.0  # seconds after start before RSS is read: imports and warm-up done


def _rss_with(folder: Path, count: int) -> int:
    rules = yaml.safe_dump({"rules": workload.spread_rules(count)}, sort_keys=False)
    with (
        stores.fresh("sqlite", folder) as url,
        servers.hookwise(folder, url, rules) as process,
    ):
        time.sleep(SETTLE)
        return process.rss_bytes()


def run(folder: Path, count: int) -> dict[str, Any]:
    few = _rss_with(folder / "few", FEW)
    many = _rss_with(folder / "many", FEW + count)
    return {
        "rules": count,
        "rss_few_mib": round(few / 2**20, 1),
        "rss_many_mib": round(many / 2**20, 1),
        "bytes_per_rule": round((many - few) / count),
    }
