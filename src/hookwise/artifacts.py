"""One view of "the artifact" across registries, so one rule can serve them all.

Every source fills the same keys from whatever its sender provides; a key the sender
does not know stays None, and a rule matching on it simply does not match.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

FIELDS = ("registry", "repository", "path", "name", "image", "tag", "digest", "size", "url")


def artifact(**values: Any) -> dict[str, Any]:
    """All of FIELDS, in order; unknown keys are a programming error."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"not artifact fields: {', '.join(sorted(unknown))}")
    return {name: values.get(name) for name in FIELDS}


def host_of(url: str | None) -> str | None:
    """`localhost/harbor/alpine:3.8` or `https://jfrog.example/artifactory` → the host part."""
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.netloc or None


def sha256_digest(checksum: Any) -> str | None:
    """Registries spell digests `sha256:<hex>`; Artifactory sends the bare hex."""
    if not isinstance(checksum, str) or not checksum:
        return None
    return checksum if ":" in checksum else f"sha256:{checksum}"
