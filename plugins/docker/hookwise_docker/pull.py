"""`docker.pull`: fetch an image onto the engine, with the registry's credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound
from pydantic import BaseModel, ConfigDict, Field, field_validator
from requests import RequestException

from hookwise.plugin import IMAGE_REFERENCE, ActionContext, PermanentFailure
from hookwise_docker.failures import classify, classify_text
from hookwise_docker.settings import HUB, DockerSettings, connect


@dataclass(frozen=True)
class Reference:
    """An image reference split the way the engine's pull API wants it."""

    name: str  # repository, with its registry host when not Docker Hub
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        match = IMAGE_REFERENCE.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not an image reference like registry.example.com:5000/app:1.2 "
                "or app@sha256:<digest> (lower-case repository; a tag has no '/' or ':')"
            )
        return cls(match["name"], match["tag"], match["digest"])

    @property
    def registry(self) -> str:
        """The registry host, as Docker decides it: a first part with '.' or ':', or localhost."""
        first, _, rest = self.name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return HUB

    @property
    def pinned(self) -> str:
        """What to ask the engine for: the digest if given, else the tag (latest by default)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"{self.name}{':' + self.tag if self.tag else ''}{'@' + self.digest if self.digest else ''}"  # noqa: E501

    @property
    def local(self) -> str:
        """How to find the pulled image on the engine: by digest, else by tag."""
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.pinned}"


def image_reference(value: str) -> str:
    """Pydantic validator: the reference must be one image, whatever a template produced."""
    Reference.parse(value.strip())
    return value.strip()


class PullParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        description="Image reference with tag or digest, e.g. "
        "`registry.example.com/app:{{ artifact.tag }}` (no tag means `latest`)."
    )
    platform: str | None = Field(
        default=None, description="Platform to pull for a multi-platform image, e.g. linux/arm64."
    )

    @field_validator("image")
    @classmethod
    def _one_image(cls, image: str) -> str:
        return image_reference(image)


def pull_image(
    client: docker.DockerClient,
    settings: DockerSettings,
    image: str,
    platform: str | None,
    context: ActionContext,
) -> dict[str, Any]:
    """Pull through the engine and describe the result; raises RetryLater or PermanentFailure."""
    ref = Reference.parse(image)
    what = f"pull {ref}"
    creds = settings.credentials_for(ref.registry)
    auth = (
        {
            "username": creds.username,
            "password": creds.password.get_secret_value(),
            "serveraddress": ref.registry,
        }
        if creds
        else None
    )
    digest = ref.digest
    try:
        stream = client.api.pull(
            ref.name, tag=ref.pinned, stream=True, decode=True, auth_config=auth, platform=platform
        )
        failure = None
        for line in stream:  # read to the end even after an error, so the connection is freed
            if failure is None and ("error" in line or "errorDetail" in line):
                detail = line.get("errorDetail") or {}
                text = str(detail.get("message") or line.get("error"))
                failure = classify_text(what, text, detail.get("code"))
            status = str(line.get("status", ""))
            if status.startswith("Digest: "):
                digest = status.removeprefix("Digest: ").strip()
        if failure is not None:
            raise failure
        found = client.images.get(ref.local)
    except ImageNotFound as exc:
        raise PermanentFailure(
            f"{what}: the engine reported success but has no such image"
        ) from exc
    except (DockerException, RequestException) as exc:
        raise classify(what, exc) from exc
    digest = digest or _repo_digest(found.attrs.get("RepoDigests") or [], ref.name)
    context.log.info(f"pulled {ref} ({found.id}{', ' + digest if digest else ''})")
    out: dict[str, Any] = {"image": str(ref), "id": found.id}
    if digest:
        out["digest"] = digest
    return out


def _repo_digest(repo_digests: list[str], name: str) -> str | None:
    """The registry digest when the engine knows exactly one for this repository."""
    mine = [d.split("@", 1)[1] for d in repo_digests if d.split("@", 1)[0] in _names(name)]
    return mine[0] if len(set(mine)) == 1 else None


def _names(name: str) -> set[str]:
    """A Hub repository is stored as docker.io/library/x, x or library/x depending on engine."""
    names = {name}
    if Reference(name, None, None).registry == HUB:
        path = name if "/" in name else f"library/{name}"
        names |= {path, f"docker.io/{path}", path.removeprefix("library/")}
    return names


def docker_pull(params: PullParams, context: ActionContext) -> dict[str, Any]:
    client = connect(context.settings)
    try:
        return pull_image(client, context.settings, params.image, params.platform, context)
    finally:
        client.close()
