"""Section (a): one endpoint at a fixed offered rate, then flat out.

The fixed-rate phase is what the target speaks of (1,000 deliveries/s offered). The
closed-loop phase that follows finds the most the endpoint accepts, for the ratio
against the bare endpoint. No rule matches these deliveries, so no action runs:
this is the cost of accepting (verify, normalize, match, commit) alone.
"""

from __future__ import annotations

from typing import Any

from bench import load
from bench.servers import Process
from bench.workload import Traffic

WARMUP_SECONDS = 1.0


async def warm_up(process: Process, traffic: Traffic, rate: float, seconds: float) -> None:
    """Connections open, caches and pages warm, before anything is timed."""
    requests = [traffic.load() for _ in range(int(rate * min(WARMUP_SECONDS, seconds)))]
    await load.offer(process.hooks_url, requests, rate)


async def measure(
    process: Process, traffic: Traffic, rate: float, seconds: float, saturate_seconds: float
) -> dict[str, Any]:
    await warm_up(process, traffic, rate, seconds)
    requests = [traffic.load() for _ in range(int(rate * seconds))]
    outcomes, cpu = await load.with_cpu(
        process.cpu_seconds, load.offer(process.hooks_url, requests, rate)
    )
    fixed = {**load.summarize(outcomes, rate), **cpu}
    outcomes, cpu = await load.with_cpu(
        process.cpu_seconds, load.saturate(process.hooks_url, traffic.load, saturate_seconds)
    )
    closed = {**load.summarize(outcomes), **cpu}
    return {"endpoint": process.name, "fixed_rate": fixed, "closed_loop": closed}
