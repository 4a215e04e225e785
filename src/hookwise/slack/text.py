"""What people read in Slack: mrkdwn escaping, length limits, and one-line summaries."""

from __future__ import annotations

from typing import Any

from hookwise.event import Event


def escape(value: Any) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_digest(digest: str | None) -> str | None:
    """`sha256:ee34c5…` → `sha256:ee34c5c94b4d`: enough to tell images apart."""
    if not digest:
        return None
    algorithm, _, hexpart = digest.rpartition(":")
    return f"{algorithm}:{hexpart[:12]}" if algorithm else hexpart[:12]


def artifact_label(artifact: dict[str, Any] | None) -> str | None:
    """`image:tag`, `image@sha256:short`, or the path: how people name an artifact."""
    if not artifact:
        return None
    image, tag = artifact.get("image"), artifact.get("tag")
    if image:
        if tag:
            return f"{image}:{tag}"
        digest = short_digest(artifact.get("digest"))
        return f"{image}@{digest}" if digest else str(image)
    return artifact.get("path") or artifact.get("name")


def summary(event: Event) -> str:
    """One line for notifications and screen readers: what happened, to what."""
    what = f"{event.source}: {event.domain} {event.event_type}"
    label = artifact_label(event.as_dict()["artifact"])
    return f"{what} {label}" if label else what
