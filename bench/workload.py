"""What the suite sends and matches: signed Artifactory deliveries, events and rule sets.

Everything is generated from a seed, so two runs measure the same work. Bodies are
unique per delivery (hookwise deduplicates Artifactory events by their exact body)
and are built and signed before the clock starts, so the client spends its time on
sending.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

import yaml

from bench.servers import SECRET, SOURCES

KINDS = {
    "docker": ("pushed", "deleted", "promoted"),
    "artifact": ("deployed", "deleted", "moved", "copied"),
    "build": ("uploaded", "promoted"),
    "release_bundle": ("created", "signed"),
}
PROBE_IMAGE = "bench/probe"
PROBE_RULE = "probe-to-sink"


def docker_data(image: str, tag: str, seq: int) -> dict[str, Any]:
    """The `data` of an Artifactory docker event, as Artifactory sends it."""
    digest = hashlib.sha256(f"{image}:{tag}:{seq}".encode()).hexdigest()
    return {
        "repo_key": "docker-local",
        "path": f"{image}/{tag}/manifest.json",
        "name": "manifest.json",
        "sha256": digest,
        "size": 1024 + seq % 4096,
        "image_name": image,
        "tag": tag,
        "platforms": [{"architecture": "amd64", "os": "linux"}],
    }


def delivery(image: str, tag: str, seq: int) -> bytes:
    payload = {"domain": "docker", "event_type": "pushed", "data": docker_data(image, tag, seq)}
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    """`signed: true`: X-JFrog-Event-Auth is the hex HMAC-SHA256 of the raw body."""
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-JFrog-Event-Auth": signature, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]
    probe: bool = False


class Traffic:
    """Deliveries for one server: numbered so that none repeats an earlier body."""

    def __init__(self) -> None:
        self._seq = itertools.count()

    def load(self) -> Request:
        """A delivery no rule matches: the steady traffic of section (a)."""
        seq = next(self._seq)
        body = delivery(f"load/app-{seq % 50}", f"1.0.{seq}", seq)
        return Request(body, signed_headers(body))

    def probe(self) -> Request:
        """A delivery only the probe rule matches; its run posts to the sink."""
        seq = next(self._seq)
        body = delivery(PROBE_IMAGE, f"p{seq}", seq)
        return Request(body, signed_headers(body), probe=True)


def server_rules(sink_url: str, extra: int, seed: int = 1) -> str:
    """The rule file `hookwise serve` runs: the probe rule plus `extra` rules load misses."""
    probe = {
        "name": PROBE_RULE,
        "when": {
            "source": "artifactory",
            "domain": "docker",
            "event_type": "pushed",
            "match": {"data.image_name": PROBE_IMAGE},
        },
        "actions": [
            {
                "uses": "http.post",
                "with": {"url": f"{sink_url}/arrive", "json": {"event": "{{ event.id }}"}},
            }
        ],
    }
    return yaml.safe_dump({"rules": [probe, *spread_rules(extra, seed)]}, sort_keys=False)


def _action() -> list[dict[str, Any]]:
    return [{"uses": "log", "with": {"message": "{{ data.image_name }}:{{ data.tag }}"}}]


def teams(count: int) -> int:
    """About ten rules per team, whatever the number of rules."""
    return max(1, count // 10)


def spread_rules(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """Rules as a large installation has them: spread over sources and event kinds.

    Each names its source, domain and event type (a tenth use a wildcard in one of
    them) and matches a team's images or repositories with a glob; some also exclude
    snapshots or test the size.
    """
    rng = random.Random(seed)
    rules = []
    for number in range(count):
        domain = rng.choice(list(KINDS))
        team = rng.randrange(teams(count))
        key, glob = (
            ("data.image_name", f"team-{team:04d}/*")
            if domain == "docker"
            else ("data.repo_key", f"team-{team:04d}-*")
        )
        when: dict[str, Any] = {
            "source": rng.choice(SOURCES),
            "domain": domain,
            "event_type": rng.choice(KINDS[domain]),
            "match": {key: glob},
        }
        roll = rng.random()
        if roll < 0.04:
            when["source"] = "artifactory*"
        elif roll < 0.07:
            when["domain"] = domain[:3] + "*"
        elif roll < 0.1:
            when["event_type"] = "*"
        if rng.random() < 0.2:
            when["exclude"] = {"data.tag": "*-SNAPSHOT"}
        if rng.random() < 0.1:
            when["if"] = "data.size > 2048"
        rules.append({"name": f"spread-{number:05d}", "when": when, "actions": _action()})
    return rules


def by_source_rules(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """The index's best case: each team posts to its own source and its rules name it."""
    rng = random.Random(seed)
    rules = []
    for number in range(count):
        domain = rng.choice(list(KINDS))
        when = {
            "source": f"team-{rng.randrange(teams(count)):04d}",
            "domain": domain,
            "event_type": rng.choice(KINDS[domain]),
        }
        rules.append({"name": f"source-{number:05d}", "when": when, "actions": _action()})
    return rules


def per_image_rules(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """The hard case for the index: every rule is for Docker pushes, one image each.

    All of them are candidates for every Docker push, so only `match` tells them apart.
    """
    return [
        {
            "name": f"image-{number:05d}",
            "when": {
                "source": "artifactory",
                "domain": "docker",
                "event_type": "pushed",
                "match": {"data.image_name": f"team-{number:05d}/app"},
            },
            "actions": _action(),
        }
        for number in range(count)
    ]


def spread_event(rng: random.Random, count: int, seq: int) -> tuple[str, str, str, dict[str, Any]]:
    """Source, domain, event type and data of one event for `spread_rules(count)`."""
    domain = rng.choice(list(KINDS))
    team = rng.randrange(teams(count))
    data = docker_data(f"team-{team:04d}/app-{seq % 7}", f"1.{seq}.0", seq)
    data["repo_key"] = f"team-{team:04d}-local"
    return rng.choice(SOURCES), domain, rng.choice(KINDS[domain]), data


def by_source_event(
    rng: random.Random, count: int, seq: int
) -> tuple[str, str, str, dict[str, Any]]:
    """An event from one team's own source, for `by_source_rules(count)`."""
    _, domain, event_type, data = spread_event(rng, count, seq)
    return f"team-{rng.randrange(teams(count)):04d}", domain, event_type, data


def per_image_event(
    rng: random.Random, count: int, seq: int
) -> tuple[str, str, str, dict[str, Any]]:
    """A Docker push of one of the images `per_image_rules(count)` names."""
    image = f"team-{rng.randrange(count):05d}/app"
    return "artifactory", "docker", "pushed", docker_data(image, f"1.{seq}.0", seq)
