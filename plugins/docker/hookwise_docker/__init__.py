"""Docker for hookwise: `docker.pull` fetches an image, `docker.redeploy` replaces a container.

Works with any engine that speaks the Docker Engine API: Docker, or Podman's API service
(`podman system service`). Settings (`integrations.docker`): the engine's `base_url`, a
request `timeout`, TLS files for a remote engine, and registry credentials (per registry
host in `registries`, or one `registry`/`username`/`password`) sent with pulls from that
registry only. Without configured credentials the engine is asked to pull with those of
`docker login` for the user hookwise runs as, if any.

Outputs (JSON, for later actions as `steps.<id>.output`):

- `docker.pull` → `{"image": "registry:5000/app:v2", "id": "sha256:…",
  "digest": "sha256:…"}`; `digest` (the registry's manifest digest) is left out when the
  engine does not report exactly one.
- `docker.redeploy` → `{"container": "app", "container_id": "…", "image": "registry:5000/app:v2",
  "old_image_id": "sha256:…" or null (no previous container), "new_image_id": "sha256:…",
  "rolled_back": false}`. A redeploy that rolled back fails permanently instead, and its
  message names the same facts (`rolled_back=true`) and the new container's last log lines.

Failures: a missing repository or tag, refused credentials (401/403) and invalid requests
are permanent; the engine being unreachable, timeouts, 5xx and registry rate limits retry.
Each redeployed container carries the action's idempotency key as a label, so a retry of
an attempt that in fact succeeded returns at once instead of redeploying again.
"""

from __future__ import annotations

from hookwise.plugin import ActionSpec, IntegrationSpec, hookimpl
from hookwise_docker.pull import PullParams, docker_pull
from hookwise_docker.redeploy import RedeployParams, docker_redeploy
from hookwise_docker.settings import DockerSettings

__all__ = ["DockerSettings", "PullParams", "RedeployParams", "docker_pull", "docker_redeploy"]


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [
        IntegrationSpec(
            "docker",
            DockerSettings,
            "A Docker-API engine (Docker or Podman) and the registries it pulls from.",
        )
    ]


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            "docker.pull",
            PullParams,
            docker_pull,
            "Pull an image onto the engine with the registry's credentials.",
            integration="docker",
        ),
        ActionSpec(
            "docker.redeploy",
            RedeployParams,
            docker_redeploy,
            "Replace a container by one from a new image, keeping its settings; "
            "rolls back if the new one does not come up.",
            integration="docker",
        ),
    ]
