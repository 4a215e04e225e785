"""`docker.redeploy`: replace a named container by one from a new image, or roll back.

The procedure, in order (each step only once the one before succeeded):

1. Pull the new image, with the registry's credentials. A failed pull changes nothing.
2. Inspect the existing container and keep its own settings (see `keep.py`), then apply
   the rule's overrides.
3. Stop the old container and rename it `<name>-previous-<short id>`: the name is free,
   and the old container is still there to go back to.
4. Create and start the new container under the name, and wait until it runs, is not
   restarting, (with a health check) is healthy, and (with a `probe`) passes its
   probe, within `timeout`.
5. Success: remove the old container (its volumes stay). Failure (create or start
   error, exit, restart loop, unhealthy, timeout): keep the new container's last log
   lines, remove it, rename the old one back and start it again if it was running, then
   fail permanently saying so.

Without an existing container the new one is simply created; a failure then leaves no
container behind. A container left as `<name>-previous-*` by an interrupted redeploy
(hookwise killed mid-way) is renamed back first when `<name>` is missing.

Two redeploys of the same container never overlap inside one hookwise process (a lock per
engine and container name; the second waits up to its `timeout`, then retries later).
Across hookwise processes sharing one engine this relies on hookwise's run concurrency
limits (issue 5): one run per container, or one hookwise deploying to each engine.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from requests import RequestException

from hookwise.plugin import (
    ActionContext,
    ActionError,
    Duration,
    PermanentFailure,
    RetryLater,
    SkipRun,
    VersionPolicy,
    mask,
    tag_of,
)
from hookwise_docker.failures import classify, engine_message
from hookwise_docker.keep import OWN_LABELS, apply_overrides, kept_settings
from hookwise_docker.probe import Probe, run_probe
from hookwise_docker.pull import image_reference, pull_image
from hookwise_docker.settings import DockerSettings, connect

KEY_LABEL = OWN_LABELS + "key"
PREVIOUS_IMAGE_LABEL = OWN_LABELS + "previous-image"
LOG_LINES = 20
MAX_LOG_CHARS = 2000
POLL = 0.25
DEFAULT_HEALTH_INTERVAL_NS = 30_000_000_000  # Docker's default interval between probes
_MISSING = "container, image or network"  # what a 404 means once the pull is done
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# `8080` or `8080/udp` inside; `18080`, `127.0.0.1:18080` or `[::1]:18080` on the host.
_CONTAINER_PORT = re.compile(r"^\d{1,5}(/(tcp|udp|sctp))?$")
_HOST_PORT = re.compile(r"^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?\d{1,5}$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


class RedeployParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    container: str = Field(description="Name of the container to replace (or create).")
    image: str = Field(
        description="New image, e.g. `127.0.0.1:5000/helloworld:{{ artifact.tag }}`; keep the "
        "repository literal and template only the tag."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set over the kept ones."
    )
    ports: dict[int | str, int | str | None] = Field(
        default_factory=dict,
        description="Container port (`8080` or `8080/udp`) -> host port (`18080` or "
        "`127.0.0.1:18080`), over the kept bindings; null removes a binding.",
    )
    volumes: list[str] = Field(
        default_factory=list,
        description="`source:destination[:ro|rw]` (host path or volume name); replaces what "
        "was mounted at the same destination.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels set over the kept ones."
    )
    restart_policy: str | None = Field(
        default=None, description="`no`, `always`, `unless-stopped` or `on-failure[:N]`."
    )
    network: str | None = Field(
        default=None,
        description="Network to join instead of the kept ones (or host, none, container:<id>).",
    )
    command: str | list[str] | None = Field(
        default=None, description="Command instead of the kept one (or the image's)."
    )
    timeout: Duration = Field(
        default=60.0, gt=0, description="Time the new container has to come up (and be healthy)."
    )
    health: bool | Literal["auto"] = Field(
        default="auto",
        description="Wait for `healthy`: true (a health check is required), false (never), "
        "auto (when the container or image has a health check).",
    )
    policy: VersionPolicy | None = Field(
        default=None,
        description="Redeploy only when the new tag qualifies against the running "
        "container's (e.g. semver: minor); otherwise the run ends skipped, saying why.",
    )
    probe: Probe | None = Field(
        default=None,
        description="An HTTP, TCP or exec check of the new container, run once it is up "
        "(and healthy) and before the old one is removed; failing, it rolls back. Use it "
        "when the image may have no HEALTHCHECK (Podman's OCI images drop it).",
    )
    stable_for: Duration = Field(
        default=2.0,
        ge=0,
        description="Without a health check: how long the new container must keep running.",
    )
    stop_timeout: Duration | None = Field(
        default=None,
        description="Grace period for the old container to stop before it is killed "
        "(default: the container's own, usually 10s).",
    )

    @model_validator(mode="after")
    def _stable_within_timeout(self) -> RedeployParams:
        if self.stable_for >= self.timeout:
            raise ValueError("stable_for must be shorter than timeout, or every redeploy times out")
        return self

    @field_validator("ports")
    @classmethod
    def _port_shapes(
        cls, ports: dict[int | str, int | str | None]
    ) -> dict[int | str, int | str | None]:
        for inside, outside in ports.items():
            if not _CONTAINER_PORT.match(str(inside)) and "{" not in str(inside):
                raise ValueError(f"container port {inside!r} is not like 8080 or 8080/udp")
            if outside is None or "{" in str(outside):  # a template: checked once rendered
                continue
            if not _HOST_PORT.match(str(outside)):
                raise ValueError(
                    f"host port {outside!r} for {inside} is not like 18080 or 127.0.0.1:18080"
                )
        return ports

    @field_validator("container")
    @classmethod
    def _container_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
        return name

    @field_validator("image")
    @classmethod
    def _one_image(cls, image: str) -> str:
        return image_reference(image)

    @field_validator("restart_policy")
    @classmethod
    def _policy(cls, policy: str | None) -> str | None:
        if policy is not None and not _RESTART.match(policy):
            raise ValueError(
                f"restart_policy must be no, always, unless-stopped or on-failure[:N], "
                f"got {policy!r}"
            )
        return policy

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, volumes: list[str]) -> list[str]:
        for volume in volumes:
            parts = volume.split(":")
            if (
                len(parts) not in (2, 3)
                or not all(parts[:2])
                or parts[2:] not in ([], ["ro"], ["rw"])
            ):
                raise ValueError(f"volume {volume!r} is not source:destination[:ro|rw]")
        return volumes


@contextmanager
def _exclusive(base_url: str, container: str, wait: float) -> Iterator[None]:
    """One redeploy per engine and container name at a time, in this process."""
    with _locks_guard:
        lock = _locks.setdefault((base_url, container), threading.Lock())
    if not lock.acquire(timeout=wait):
        raise RetryLater(
            f"another redeploy of container {container} is still in progress; trying again later",
            delay=min(wait, 30.0),
        )
    try:
        yield
    finally:
        lock.release()


def docker_redeploy(params: RedeployParams, context: ActionContext) -> dict[str, Any]:
    settings: DockerSettings = context.settings
    with _exclusive(settings.base_url, params.container, params.timeout):
        client = connect(settings)
        try:
            return _Redeploy(client, settings, params, context).run()
        finally:
            client.close()


class _Redeploy:
    """One redeploy; the steps are methods so the order reads top to bottom in `run`."""

    def __init__(
        self,
        client: docker.DockerClient,
        settings: DockerSettings,
        params: RedeployParams,
        context: ActionContext,
    ) -> None:
        self.client = client
        self.settings = settings
        self.params = params
        self.context = context
        self.log = context.log
        self.name = params.container
        self.recovered = False
        self.created: Container | None = None  # the new container, once the engine made it
        # Give up waiting while a fifth of the attempt's time limit is left for the rollback,
        # rather than being abandoned by hookwise mid-way.
        limit = getattr(context, "timeout", None)
        self.attempt_ends = time.monotonic() + 0.8 * limit if limit else math.inf

    def run(self) -> dict[str, Any]:
        old = self._guard("inspect", self._existing)
        if old is not None and _labelled_by_this_action(old, self.context.idempotency_key):
            leftovers = self._guard("inspect", self._leftovers)
            if len(leftovers) == 1:
                # An earlier attempt of this action died half-way (its new container holds the
                # name, the previous one is parked): undo it, then redeploy from the start.
                old = self._guard("recover", lambda: self._undo_half_deploy(old, leftovers[0]))
        if old is not None and _done_by_this_action(old, self.context.idempotency_key):
            self.log.info(
                f"{self.name} already runs {old.attrs['Image']}: an earlier attempt did it"
            )
            labels = old.attrs["Config"].get("Labels") or {}
            return self._output(old, labels.get(PREVIOUS_IMAGE_LABEL), old.attrs["Image"])
        self._admit(old)
        pulled = pull_image(self.client, self.settings, self.params.image, None, self.context)
        if old is None:
            return self._create_first(pulled["id"])
        return self._replace(old, pulled["id"])

    # -- the existing container -------------------------------------------------------

    def _leftovers(self) -> list[Container]:
        """Containers parked as `<name>-previous-*` by a redeploy that did not finish."""
        prefix = f"{self.name}-previous-"
        return [
            c
            for c in self.client.containers.list(all=True, filters={"name": prefix})
            if c.name.startswith(prefix)
        ]

    def _undo_half_deploy(self, half: Container, previous: Container) -> Container:
        self.log.warning(
            f"{self.name} ({half.short_id}) was created by an interrupted attempt and "
            f"{previous.name} is still parked: restoring it before redeploying"
        )
        half.remove(force=True)
        previous.rename(self.name)
        previous.reload()
        self.recovered = True
        return previous

    def _existing(self) -> Container | None:
        try:
            found = self.client.containers.get(self.name)
            if found.name == self.name:  # `get` also matches an ID prefix
                return found
        except NotFound:
            pass
        left = self._leftovers()
        if not left:
            return None
        if len(left) > 1:
            names = ", ".join(sorted(c.name for c in left))
            raise PermanentFailure(
                f"there is no container {self.name} but several left by interrupted redeploys "
                f"({names}); rename the one to keep to {self.name} and remove the others"
            )
        self.log.warning(
            f"no container {self.name}, but {left[0].name} was left by an interrupted "
            f"redeploy: renaming it back to {self.name} first"
        )
        left[0].rename(self.name)
        left[0].reload()
        self.recovered = True
        return left[0]

    def _image_config(self, image_id: str) -> dict[str, Any]:
        """The old image's config, to tell its defaults from the container's own settings."""
        try:
            return self.client.api.inspect_image(image_id).get("Config") or {}
        except NotFound:
            self.log.warning(
                f"the old image {image_id} is gone: every setting of {self.name} is kept as "
                "its own, image defaults included"
            )
            return {}

    # -- creating and replacing -------------------------------------------------------

    def _create_kwargs(self, old: Container | None, old_image_id: str | None) -> dict[str, Any]:
        kept = (
            kept_settings(old.attrs, self._image_config(old.attrs["Image"]))
            if old is not None
            else {}
        )
        overrides = self.params.model_dump(
            include={"env", "ports", "volumes", "labels", "restart_policy", "network", "command"}
        )
        kwargs = apply_overrides(kept, overrides)
        kwargs["labels"] = {**kwargs.get("labels", {}), KEY_LABEL: self.context.idempotency_key}
        if old_image_id:
            kwargs["labels"][PREVIOUS_IMAGE_LABEL] = old_image_id
        return kwargs

    def _create_first(self, new_image_id: str) -> dict[str, Any]:
        self.log.info(f"there is no container {self.name}: creating it")
        kwargs = self._guard("prepare", lambda: self._create_kwargs(None, None))
        try:
            new, failure = self._bring_up(kwargs)
        except (DockerException, RequestException) as exc:  # the engine itself failed mid-way
            self._discard(self.created)
            raise classify(f"docker.redeploy of {self.name}", exc, _MISSING) from exc
        if failure is not None:
            tail = self._discard(new)
            raise PermanentFailure(
                f"docker.redeploy of {self.name} to {self.params.image} failed: {failure}; "
                f"there was no previous container to roll back to, so none is left"
                f" (new_image_id={new_image_id}, rolled_back=false){tail}"
            )
        assert new is not None
        return self._output(new, None, new_image_id)

    def _replace(self, old: Container, new_image_id: str) -> dict[str, Any]:
        old_image_id = old.attrs["Image"]
        was_running = bool(old.attrs["State"].get("Running")) or self.recovered
        kwargs = self._guard("prepare", lambda: self._create_kwargs(old, old_image_id))
        self._set_aside(old, was_running)
        try:
            new, failure = self._bring_up(kwargs)
        except (DockerException, RequestException) as exc:  # the engine itself failed mid-way
            error = classify(f"docker.redeploy of {self.name}", exc, _MISSING)
            self._roll_back(old, self.created, was_running, str(error), new_image_id)
            note = f"{error}; rolled back: {self.name} runs its previous container again"
            if isinstance(error, RetryLater):
                raise RetryLater(note, error.delay) from exc
            raise PermanentFailure(note) from exc
        if failure is not None:
            tail = self._roll_back(old, new, was_running, failure, new_image_id)
            raise PermanentFailure(
                f"docker.redeploy of {self.name} to {self.params.image} failed and was rolled "
                f"back: {failure}; {self.name} runs the previous image again (container="
                f"{self.name}, container_id={old.id}, old_image_id={old_image_id}, "
                f"new_image_id={new_image_id}, rolled_back=true){tail}"
            )
        assert new is not None
        self._remove_previous(old)
        return self._output(new, old_image_id, new_image_id)

    def _set_aside(self, old: Container, was_running: bool) -> None:
        """Stop the old container and free its name, keeping it for a rollback."""
        aside = f"{self.name}-previous-{old.id[:12]}"
        stop = (
            {} if self.params.stop_timeout is None else {"timeout": int(self.params.stop_timeout)}
        )
        if old.attrs.get("HostConfig", {}).get("AutoRemove"):
            # Stopping would make the engine delete it: no rollback would be possible.
            raise PermanentFailure(
                f"{self.name} was started with --rm (AutoRemove), so stopping it deletes it and "
                "a failed redeploy could not roll back; recreate it without --rm first"
            )
        try:
            old.stop(**stop)
            old.rename(aside)
            old.reload()
        except (DockerException, RequestException) as exc:
            self._best_effort(lambda: _restore(old, self.name, was_running), "restore")
            raise classify(f"stopping {self.name}", exc, _MISSING) from exc
        self.log.info(f"stopped {self.name} ({old.short_id}) and renamed it {aside}")

    def _bring_up(self, kwargs: dict[str, Any]) -> tuple[Container | None, str | None]:
        """Create, start and watch the new container: (container, why it failed or None)."""
        networks = kwargs.pop("networks", {})
        first = next(iter(networks), None)
        if first is not None:
            kwargs["network"] = first
            kwargs["networking_config"] = {
                first: self.client.api.create_endpoint_config(aliases=networks[first] or None)
            }
        try:
            new = self.client.containers.create(self.params.image, name=self.name, **kwargs)
        except APIError as exc:
            if _engine_trouble(exc):
                raise
            return None, f"the engine refused to create it: {self._said(exc)}"
        self.created = new
        for network in list(networks)[1:]:
            self.client.api.connect_container_to_network(
                new.id, network, aliases=networks[network] or None
            )
        try:
            new.start()
        except APIError as exc:
            if _engine_trouble(exc):
                raise
            return new, f"it failed to start: {self._said(exc)}"
        self.log.info(f"started {self.name} ({new.short_id}) from {self.params.image}")
        return new, self._wait(new)

    # -- waiting ----------------------------------------------------------------------

    def _wait(self, new: Container) -> str | None:
        """None once the container is up (and healthy); else why not."""
        deadline = min(time.monotonic() + self.params.timeout, self.attempt_ends)
        new.reload()
        check = _health_check(new, self.client)
        if self.params.health is True and check is None:
            return "health: true, but neither the container nor its image has a health check"
        watch_health = check is not None and self.params.health is not False
        nudge = watch_health and self._is_podman()
        # Like Docker: the first probe one interval after the start, then every interval.
        interval = (check or {}).get("Interval") or DEFAULT_HEALTH_INTERVAL_NS
        every = interval / 1e9
        running_since: float | None = None
        last_nudge = time.monotonic()
        health = ""
        while True:
            state = new.attrs.get("State") or {}
            restarts = int(new.attrs.get("RestartCount") or 0)
            if state.get("Restarting") or restarts:
                return (
                    f"it keeps restarting (restarted {restarts} times, last exit code "
                    f"{state.get('ExitCode')})"
                )
            if not state.get("Running"):
                error = f": {state['Error']}" if state.get("Error") else ""
                return f"it exited with code {state.get('ExitCode')}{error}"
            now = time.monotonic()
            if watch_health:
                health = str((state.get("Health") or {}).get("Status") or "starting")
                if health == "healthy":
                    self.log.info(f"{self.name} is healthy")
                    return self._probe(new, deadline)
                if health == "unhealthy":
                    return f"its health check failed: {_last_probe(state)}"
                if nudge and now - last_nudge >= every:
                    self._run_podman_health_check(new)
                    last_nudge = now
            else:
                running_since = running_since or now
                if now - running_since >= self.params.stable_for:
                    self.log.info(f"{self.name} is running")
                    return self._probe(new, deadline)
            if now >= deadline:
                what = f"healthy (health: {health})" if watch_health else "stably running"
                if deadline == self.attempt_ends:
                    return f"it did not become {what} within the action's time limit"
                return f"it did not become {what} within {self.params.timeout:g}s"
            time.sleep(POLL)
            new.reload()

    def _admit(self, old: Container | None) -> None:
        """With a `policy`, end the run skipped unless the new tag qualifies against the
        running container's, before anything is pulled or touched."""
        policy = self.params.policy
        if policy is None:
            return
        new = tag_of(self.params.image) or self.params.image
        running = old.attrs["Config"].get("Image") if old is not None else None
        refusal = policy.refusal(new, tag_of(running) if running else None, "running")
        if refusal is not None:
            raise SkipRun(f"{self.name}: {refusal}")

    def _probe(self, new: Container, deadline: float) -> str | None:
        if self.params.probe is None:
            return None
        return run_probe(self.params.probe, new, deadline, self.log, self.name)

    def _is_podman(self) -> bool:
        components = self.client.version().get("Components") or []
        return any("podman" in str(c.get("Name", "")).lower() for c in components)

    def _run_podman_health_check(self, new: Container) -> None:
        """Podman runs health checks from systemd timers; without systemd, nobody does.

        Its own API runs one on demand and records the result, so while it waits hookwise
        does that at the check's interval. Docker schedules checks itself and is never
        asked this.
        """
        api = self.client.api
        url = f"{api.base_url}/v{api.api_version}/libpod/containers/{new.id}/healthcheck"
        try:
            api.get(url, timeout=self.settings.timeout)
        except RequestException as exc:
            self.log.warning(f"could not run the health check of {self.name}: {exc}")

    # -- endings ----------------------------------------------------------------------

    def _roll_back(
        self, old: Container, new: Container | None, was_running: bool, why: str, new_id: str
    ) -> str:
        """Remove the new container, bring the old one back; returns the log tail text."""
        self.log.error(f"{self.name} did not come up ({why}): rolling back")
        tail = self._discard(new)
        try:
            _restore(old, self.name, was_running)
        except (DockerException, RequestException) as exc:
            trouble = classify(f"restoring {self.name}", exc, _MISSING)
            if isinstance(trouble, RetryLater):
                # The engine is away; the next attempt finds the parked container and
                # restores it before anything else (see `_existing`, `_undo_half_deploy`).
                raise RetryLater(
                    f"docker.redeploy of {self.name} failed: {why}; the engine could not be "
                    f"reached to roll back ({trouble}); the next attempt restores {old.name}",
                    trouble.delay,
                ) from exc
            raise PermanentFailure(
                f"docker.redeploy of {self.name} to {self.params.image} failed: {why}; and the "
                f"rollback failed too: {self._said(exc)}. The previous container is {old.name} "
                f"({old.id}, image {old.attrs['Image']}): rename it to {self.name} and start it "
                f"(new_image_id={new_id}, rolled_back=false){tail}"
            ) from exc
        self.log.warning(f"rolled back: {self.name} ({old.short_id}) runs its previous image again")
        return tail

    def _discard(self, new: Container | None) -> str:
        """Remove a failed new container; its last log lines as text for the message."""
        if new is None:
            return ""
        tail = ""
        try:
            raw = new.logs(stdout=True, stderr=True, tail=LOG_LINES)
            text = mask(raw.decode("utf-8", "replace")).strip()[-MAX_LOG_CHARS:]
            tail = f". Last log lines of the new container:\n{text}" if text else ""
        except (DockerException, RequestException) as exc:
            tail = f". Its logs could not be read: {exc}"
        self._best_effort(lambda: new.remove(force=True), f"remove the new {self.name}")
        return tail

    def _remove_previous(self, old: Container) -> None:
        try:
            old.remove(force=True)  # volumes stay: the new container uses them
            self.log.info(f"removed the previous container {old.name}")
        except (DockerException, RequestException) as exc:
            self.log.warning(f"could not remove the previous container {old.name}: {exc}")

    def _output(
        self, new: Container, old_image_id: str | None, new_image_id: str
    ) -> dict[str, Any]:
        return {
            "container": self.name,
            "container_id": new.id,
            "image": self.params.image,
            "old_image_id": old_image_id,
            "new_image_id": new_image_id,
            "rolled_back": False,
        }

    # -- helpers ----------------------------------------------------------------------

    def _guard(self, what: str, step: Any) -> Any:
        """Run an engine call whose failure changes nothing yet: classify and raise."""
        try:
            return step()
        except ActionError:
            raise
        except (DockerException, RequestException) as exc:
            raise classify(f"docker.redeploy of {self.name}: {what}", exc, _MISSING) from exc

    def _best_effort(self, step: Any, what: str) -> None:
        try:
            step()
        except (DockerException, RequestException) as exc:
            self.log.warning(f"could not {what}: {exc}")

    def _said(self, exc: Exception) -> str:
        text = engine_message(exc) if isinstance(exc, APIError) else str(exc)
        return mask(text)


def _restore(old: Container, name: str, was_running: bool) -> None:
    old.reload()
    if old.name != name:
        old.rename(name)
    if was_running:
        old.start()


def _labelled_by_this_action(container: Container, key: str) -> bool:
    labels = container.attrs["Config"].get("Labels") or {}
    return labels.get(KEY_LABEL) == key


def _done_by_this_action(container: Container, key: str) -> bool:
    running = bool(container.attrs["State"].get("Running"))
    return _labelled_by_this_action(container, key) and running


def _engine_trouble(exc: APIError) -> bool:
    """A 5xx that says the engine, not the container's config, is in trouble."""
    return exc.status_code in (502, 503, 504)


def _health_check(container: Container, client: docker.DockerClient) -> dict[str, Any] | None:
    """The health check the container runs, from its own config or else its image's."""
    check = (container.attrs.get("Config") or {}).get("Healthcheck") or {}
    if not check.get("Test"):
        try:
            image = client.api.inspect_image(container.attrs["Image"])
        except NotFound:
            return None
        check = (image.get("Config") or {}).get("Healthcheck") or {}
    test = check.get("Test")
    return None if not test or test == ["NONE"] else check


def _last_probe(state: dict[str, Any]) -> str:
    probes = (state.get("Health") or {}).get("Log") or []
    if not probes:
        return "no output"
    last = probes[-1]
    return f"exit code {last.get('ExitCode')}: {str(last.get('Output', '')).strip()[:300]}"
