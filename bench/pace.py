"""Section (e): saturation side by side, and whether the actions keep pace.

wrk drives each endpoint closed loop (its connections send the next request as soon
as the last is answered), so the numbers are the most each one accepts, measured in
one run on one machine:

- the bare Starlette endpoint (`bench.baseline`), served by the stack hookwise uses;
- adnanh/webhook (Debian's `webhook`), a Go receiver running `/bin/true` per hook,
  when it is installed;
- `hookwise serve` on each store, where every delivery matches one rule whose
  `http.post` goes to the sink. Its runs must complete: the sink counts them during
  the loop and until the backlog is drained.

Then an open-loop phase offers `pace_rate` deliveries/s to hookwise: the steady state.
It samples the backlog (accepted minus completed) each second, which must not grow
without bound, and counts the runs completed while deliveries were still offered, which
must keep up with those accepted.

wrk cannot sign a body with HMAC, so the deliveries here use the Artifactory source's
token mode; every body is still unique (hookwise deduplicates identical bodies).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import load, stores
from bench.servers import SECRET, SECRET_VARIABLE, Process, helper
from bench.stats import percentile
from bench.workload import Request, docker_data

SOURCE = "pace"
CONNECTIONS = 16
THREADS = 2
DRAIN_TIMEOUT = 300.0

# One body per request, numbered by thread and count so that none repeats.
WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local count = 0
not202 = 0
function request()
  count = count + 1
  local body = string.format(BODY, tid, count, tid, count)
  return wrk.format("POST", nil, HEADERS, body)
end
function response(status, headers, body)
  if status ~= 202 then not202 = not202 + 1 end
end
function done(summary, latency, requests)
  local refused = 0
  for _, thread in ipairs(threads) do refused = refused + thread:get("not202") end
  local errors = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"seconds":%f,"p50_ms":%f,"p99_ms":%f,"not_202":%d,' ..
    '"socket_errors":%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, refused,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for ASCII text


def wrk_script(folder: Path) -> Path:
    """The Lua script: token header, a unique Artifactory docker push per request."""
    data = docker_data("pace/app", "1.TID.N", 0)
    data["tag"], data["path"] = "1.%d.%d", "pace/app/1.%d.%d/manifest.json"
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": data})
    headers = "{" + f'["X-JFrog-Event-Auth"]={_lua_string(SECRET)},'
    headers += '["Content-Type"]="application/json"}'
    path = folder / "pace.lua"
    path.write_text(f"BODY = {_lua_string(body)}\nHEADERS = {headers}\n{WRK_SCRIPT}")
    return path


def hookwise_config(store: str, sink_url: str) -> tuple[str, str]:
    """hookwise.yaml and the one rule: every pace delivery posts its event id to the sink."""
    config = {
        "listen": "127.0.0.1:0",
        "store": store,
        "rules": "rules/",
        "egress": {"allow": ["127.0.0.1"]},
        "sources": {SOURCE: {"kind": "artifactory", "secret": f"${{{SECRET_VARIABLE}}}"}},
    }
    rule = {
        "name": "pace-to-sink",
        "when": {"source": SOURCE, "domain": "docker", "event_type": "pushed"},
        "actions": [
            {
                "uses": "http.post",
                "with": {"url": f"{sink_url}/arrive", "json": {"event": "{{ event.id }}"}},
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False), yaml.safe_dump({"rules": [rule]})


def hookwise(root: Path, store: str, sink_url: str, workers: int = 0) -> Process:
    config, rules = hookwise_config(store, sink_url)
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "pace.yaml").write_text(rules)
    (root / "hookwise.yaml").write_text(config)
    argv = [sys.executable, "-m", "hookwise", "serve", "--config", "hookwise.yaml"]
    argv += ["--workers", str(workers)]
    process = Process(f"hookwise ({store.split(':')[0]})", argv, root / "hookwise.log", cwd=root)
    process.source = SOURCE
    return process


class Webhook(Process):
    """adnanh/webhook on a free port, with a token-checked hook that runs /bin/true."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        hook = {
            "id": SOURCE,
            "execute-command": "/bin/true",
            "response-message": "accepted",
            "success-http-response-code": 202,
            "trigger-rule": {
                "match": {
                    "type": "value",
                    "value": SECRET,
                    "parameter": {"source": "header", "name": "X-JFrog-Event-Auth"},
                }
            },
        }
        (folder / "hooks.json").write_text(json.dumps([hook]))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        argv = ["webhook", "-hooks", str(folder / "hooks.json"), "-ip", "127.0.0.1"]
        super().__init__("adnanh/webhook", [*argv, "-port", str(self.port)], folder / "wh.log")
        self.source = SOURCE

    def start(self, timeout: float = 30.0) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
            except OSError:
                time.sleep(0.05)
                continue
            self.url = f"http://127.0.0.1:{self.port}"
            return self
        self.stop()
        raise RuntimeError(f"webhook did not start: {self.log.read_text()[-2000:]}")


def available() -> str | None:
    """Why this section cannot run here, or None."""
    return None if shutil.which("wrk") else "wrk is not installed (Debian package wrk)"


def webhook_available() -> bool:
    return shutil.which("webhook") is not None


async def wrk(url: str, script: Path, seconds: float) -> dict[str, Any]:
    """One closed-loop wrk run; its `done` hook prints the numbers as JSON."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s"]
    process = await asyncio.create_subprocess_exec(
        *argv, "--latency", "-s", str(script), url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    line = next(x for x in out.decode().splitlines() if x.startswith("WRK "))
    found: dict[str, Any] = json.loads(line[4:])
    found["accepted"] = found["requests"] - found["not_202"]
    found["per_s"] = round(found["accepted"] / found["seconds"], 1)
    found["p50_ms"] = round(found["p50_ms"], 2)
    found["p99_ms"] = round(found["p99_ms"], 2)
    return found


async def _arrived(client: httpx.AsyncClient, sink_url: str) -> int:
    return int((await client.get(f"{sink_url}/count")).json()["count"])


async def saturate(
    process: Process, script: Path, seconds: float, sink_url: str | None = None
) -> dict[str, Any]:
    """wrk against `process`; with a sink, also how many runs completed during and after."""
    loop = wrk(process.hooks_url, script, seconds)
    if sink_url is None:
        found, cpu = await load.with_cpu(process.cpu_seconds, loop)
        return {**found, **cpu}
    async with httpx.AsyncClient(timeout=30) as client:
        before = await _arrived(client, sink_url)
        found, cpu = await load.with_cpu(process.cpu_seconds, loop)
        during = await _arrived(client, sink_url) - before
        started = time.monotonic()
        done = during
        while done < found["accepted"] and time.monotonic() - started < DRAIN_TIMEOUT:
            await asyncio.sleep(0.25)
            done = await _arrived(client, sink_url) - before
    drained = round(time.monotonic() - started, 2)
    return {
        **found,
        **cpu,
        "completed_during": during,
        "completion_ratio": round(during / found["accepted"], 3) if found["accepted"] else None,
        "completed": done,
        "drain_seconds": drained,
        "end_to_end_per_s": round(done / (found["seconds"] + drained), 1),
    }


def _token_request(seq: int) -> Request:
    data = docker_data("pace/open", f"2.0.{seq}", seq)
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()
    headers = {"X-JFrog-Event-Auth": SECRET, "Content-Type": "application/json"}
    return Request(body, headers)


async def backlog(process: Process, sink_url: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop at `rate`: accepted minus completed, sampled each second, then drained."""
    requests = [_token_request(seq) for seq in range(int(rate * seconds))]
    samples: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        base = await _arrived(client, sink_url)
        offered_at = time.monotonic()
        sending = asyncio.create_task(load.offer(process.hooks_url, requests, rate))
        while not sending.done():
            # Wakes the moment sending ends, so `during` below counts no run after it.
            await asyncio.wait({sending}, timeout=1.0)
            elapsed = time.monotonic() - offered_at
            expected = min(len(requests), int(elapsed * rate))
            samples.append(max(0, expected - (await _arrived(client, sink_url) - base)))
        outcomes = sending.result()
        accepted = sum(1 for o in outcomes if o.status == 202)
        during = await _arrived(client, sink_url) - base
        started = time.monotonic()
        while (await _arrived(client, sink_url) - base) < accepted:
            if time.monotonic() - started > DRAIN_TIMEOUT:
                break
            await asyncio.sleep(0.25)
    half = len(samples) // 2
    tail = samples[half:-1] or samples[half:]  # the last sample falls after sending ended
    growth = (tail[-1] - tail[0]) / max(1, len(tail) - 1) if tail else 0.0
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        **{k: v for k, v in load.summarize(outcomes, rate).items() if k != "offered_per_s"},
        "backlog_samples": samples,
        "backlog_first_half_max": max(samples[:half], default=0),
        "backlog_second_half_max": max(samples[half:], default=0),
        "backlog_p50": percentile([float(s) for s in samples], 50),
        "backlog_growth_per_s": round(growth, 1),
        "completed_during": during,
        "completion_ratio": round(during / accepted, 3) if accepted else None,
        "drain_seconds": round(time.monotonic() - started, 2),
    }


async def run(
    requested: list[str], folder: Path, sink: Process, seconds: float, rate: float, workers: int
) -> dict[str, Any]:
    """The baselines, then hookwise on each store: in `serve`, and with worker processes."""
    script = wrk_script(folder)
    found: dict[str, Any] = {"connections": CONNECTIONS, "seconds": seconds, "rate": rate}
    with helper("baseline", folder / "pace-baseline") as bare:
        found["bare"] = await saturate(bare, script, seconds)
    found["webhook"] = None
    if webhook_available():
        with Webhook(folder / "pace-webhook") as webhook:
            found["webhook"] = await saturate(webhook, script, seconds)
    found["hookwise"] = {}
    for store in requested:
        kind = store.split(":")[0]
        for count in dict.fromkeys((0, workers)):
            plural = "es" if count > 1 else ""
            label = f"{kind}, " + (f"{count} worker process{plural}" if count else "runs in serve")
            root = folder / f"pace-{kind}-{count}"
            with stores.fresh(store, root) as url, hookwise(root, url, sink.url, count) as server:
                result = await saturate(server, script, seconds, sink.url)
                result["backlog"] = await backlog(server, sink.url, rate, seconds)
            found["hookwise"][label] = {"store": kind, "workers": count, **result}
    return found
