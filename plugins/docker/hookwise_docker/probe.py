"""`probe`: a check hookwise runs against the new container before the old one goes.

A container's own HEALTHCHECK is only there when the image kept it: images that
Podman builds in its default OCI format drop it, and such a broken version would count
as deployed once it merely keeps running. A probe does not depend on the image:

- `http`: GET a path on a container port; the answer must have the expected status
  (and contain `contains`, when given);
- `tcp`: a container port accepts a connection;
- `exec`: a command run inside the container exits 0.

The probe must pass `successes` times in a row, `interval` apart, within the
redeploy's `timeout`; otherwise the redeploy rolls back like for a failed health check.
HTTP and TCP probes go to the port's published address on the engine's host when it
is published, else to the container's address on its network. The address comes from
the engine, not from an event, so the egress policy (which keeps templated URLs away
from internal addresses) does not apply to it; redirects are still not followed.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from typing import Any

from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hookwise.plugin import Duration, RunLog

ATTEMPT_TIMEOUT = 5.0  # seconds one probe may take
KEPT = 200  # characters of an answer quoted in a failure


class HttpProbe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=1, le=65535, description="Port inside the container.")
    path: str = Field(default="/", pattern=r"^/", description="Path to GET.")
    status: int = Field(default=200, ge=100, le=599, description="Expected status.")
    contains: str | None = Field(default=None, description="Text the body must contain.")


class TcpProbe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=1, le=65535, description="Port inside the container.")


class Probe(BaseModel):
    """Give exactly one of `http`, `tcp`, `exec`."""

    model_config = ConfigDict(extra="forbid")

    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    exec_: list[str] | None = Field(
        default=None, alias="exec", min_length=1, description="Command and arguments."
    )
    interval: Duration = Field(default=1.0, gt=0, description="Pause between two probes.")
    successes: int = Field(default=1, ge=1, le=100, description="Passes needed in a row.")

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        kinds = [name for name in ("http", "tcp", "exec_") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of http, tcp or exec")
        return self


def run_probe(
    probe: Probe, container: Container, deadline: float, log: RunLog, name: str
) -> str | None:
    """None once the probe passed `successes` times in a row; else the last failure."""
    check = _check_for(probe, container)
    passed, failure = 0, "it was never probed"
    while True:
        failure = check() or ""
        passed = passed + 1 if not failure else 0
        if passed >= probe.successes:
            log.info(f"{name} passed its probe {passed} time(s) in a row")
            return None
        if time.monotonic() + probe.interval > deadline:
            return f"its probe failed: {failure}" if failure else "its probe did not pass in time"
        time.sleep(probe.interval)


def _check_for(probe: Probe, container: Container) -> Callable[[], str | None]:
    if probe.exec_ is not None:
        command = probe.exec_
        return lambda: _exec(container, command)
    spec = probe.http or probe.tcp
    assert spec is not None
    host, port = address(container, spec.port)
    if probe.http is not None:
        http_probe = probe.http
        return lambda: _get(host, port, http_probe)
    return lambda: _connect(host, port)


def address(container: Container, port: int) -> tuple[str, int]:
    """Where the container's `port` is reached from here: its published address, or the
    container's own on its network."""
    container.reload()
    settings: dict[str, Any] = container.attrs.get("NetworkSettings") or {}
    for binding in (settings.get("Ports") or {}).get(f"{port}/tcp") or []:
        host = binding.get("HostIp") or ""
        if binding.get("HostPort"):
            return ("127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host,
                    int(binding["HostPort"]))  # fmt: skip
    own = settings.get("IPAddress") or next(
        (
            n.get("IPAddress")
            for n in (settings.get("Networks") or {}).values()
            if n.get("IPAddress")
        ),
        None,
    )
    return own or "127.0.0.1", port


def _get(host: str, port: int, probe: HttpProbe) -> str | None:
    shown = f"GET http://{host}:{port}{probe.path}"
    connection = http.client.HTTPConnection(host, port, timeout=ATTEMPT_TIMEOUT)
    try:
        connection.request("GET", probe.path, headers={"User-Agent": "hookwise-probe"})
        answer = connection.getresponse()
        body = answer.read(64 * 1024).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"{shown}: {exc.__class__.__name__}: {exc}"
    finally:
        connection.close()
    if answer.status != probe.status:
        return f"{shown} answered {answer.status}, expected {probe.status}: {body[:KEPT]!r}"
    if probe.contains is not None and probe.contains not in body:
        return f"{shown} answered {answer.status} without {probe.contains!r}: {body[:KEPT]!r}"
    return None


def _connect(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), ATTEMPT_TIMEOUT).close()
    except OSError as exc:
        return f"TCP {host}:{port}: {exc.strerror or exc}"
    return None


def _exec(container: Container, command: list[str]) -> str | None:
    code, output = container.exec_run(command, demux=False)
    if code == 0:
        return None
    said = (output or b"").decode("utf-8", errors="replace").strip()[:KEPT]
    return f"{' '.join(command)} exited with {code}" + (f": {said}" if said else "")
