"""Image references, as registries and engines read them: [host[:port]/]path[:tag][@digest].

One grammar (the distribution project's) for every plugin that names images, so that
`docker.redeploy`, `kubernetes.rollout` and the version policies agree on what a tag is.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


def tag_of(image: str) -> str | None:
    """The tag of an image reference (`registry:5000/app:1.5.0` -> 1.5.0); None for a
    reference by digest only, without a tag, or that is not a reference."""
    found = IMAGE_REFERENCE.match(image.strip())
    return found["tag"] if found else None
