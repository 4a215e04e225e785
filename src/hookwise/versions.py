"""Version policies: deploy a tag only when it is newer than what the target has now.

A registry sends a webhook for every tag pushed or promoted, including an older one
re-promoted by mistake or a release candidate. A deploy action with a `policy` reads
what its target runs or holds (the running container's image, the value in a Git
file) and ends the run `skipped`, saying why, when the incoming tag does not qualify:

- `semver: major | minor | patch`: newer by semantic versioning (2.0.0 precedence; a
  leading `v` is allowed), and within the same major (`minor`) or the same major and
  minor (`patch`); pre-releases only with `prereleases: true`. As in Keel.
- `glob` / `regex`: the tag must match; any matching tag other than the current one.
- `force: true`: always, as without a policy, but stated in the rule.

When the current value is unknown or not a version (a first deploy, a `latest` tag),
a qualifying tag is deployed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hookwise.images import tag_of
from hookwise.rules.globs import interned

SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
Identifier = tuple[int, int | str]


class Version:
    """A parsed semantic version, ordered by 2.0.0 precedence (build metadata ignored)."""

    def __init__(self, text: str) -> None:
        found = SEMVER.match(text)
        if found is None:
            raise ValueError(f"{text!r} is not a semantic version")
        self.text = text
        self.core = (int(found[1]), int(found[2]), int(found[3]))
        self.prerelease = found[4]

    def key(self) -> tuple[tuple[int, int, int], int, tuple[Identifier, ...]]:
        """A release sorts after its pre-releases; numeric identifiers before alphanumeric."""
        if self.prerelease is None:
            return self.core, 1, ()
        parts = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in self.prerelease.split(".")
        )
        return self.core, 0, parts

    def __gt__(self, other: Version) -> bool:
        return self.key() > other.key()


def parse(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:
        return None


class VersionPolicy(BaseModel):
    """Which incoming tags a deploy action acts on. Give exactly one of `semver`,
    `glob`, `regex`, `force`."""

    model_config = ConfigDict(extra="forbid")

    semver: Literal["major", "minor", "patch"] | None = Field(
        default=None, description="Newer versions only: any (major), same major, same minor."
    )
    prereleases: bool = Field(default=False, description="With semver: accept 1.5.0-rc.1.")
    glob: str | None = Field(default=None, description="The tag must match this glob.")
    regex: str | None = Field(default=None, description="The tag must match this regex.")
    force: bool = Field(default=False, description="Every tag, as without a policy.")

    @model_validator(mode="after")
    def _one_kind(self) -> VersionPolicy:
        kinds = [k for k in ("semver", "glob", "regex") if getattr(self, k) is not None]
        kinds += ["force"] if self.force else []
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of semver (major, minor, patch), glob, regex or force: true"
            )
        return self

    @field_validator("glob")
    @classmethod
    def _compiles(cls, glob: str | None) -> str | None:
        if glob is not None:
            interned(glob)  # a GlobError (a ValueError) says what is wrong
        return glob

    @field_validator("regex")
    @classmethod
    def _valid(cls, regex: str | None) -> str | None:
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"regex {regex!r} is invalid: {exc}") from exc
        return regex

    def refusal(self, new: str, current: str | None, where: str) -> str | None:
        """Why `new` must not replace `current` (`where`: "running", "committed"), or None."""
        if self.force:
            return None
        if self.glob is not None:
            if not interned(self.glob).matches(new):
                return f"{new} does not match the policy's glob {self.glob}"
            return None if new != current else f"{new} is already {where}"
        if self.regex is not None:
            if re.search(self.regex, new) is None:
                return f"{new} does not match the policy's regex {self.regex}"
            return None if new != current else f"{new} is already {where}"
        return self._semver_refusal(new, current, where)

    def _semver_refusal(self, new: str, current: str | None, where: str) -> str | None:
        incoming = parse(new)
        if incoming is None:
            return f"{new} is not a semantic version (policy semver: {self.semver})"
        if incoming.prerelease is not None and not self.prereleases:
            return f"{new} is a pre-release; set prereleases: true to deploy those"
        running = parse(current) if current else None
        if running is None:
            return None
        if not incoming > running:
            return f"{new} is not newer than {where} {current}"
        if self.semver == "minor" and incoming.core[0] != running.core[0]:
            return f"{new} is a new major version; {where} is {current} (policy semver: minor)"
        if self.semver == "patch" and incoming.core[:2] != running.core[:2]:
            return f"{new} is not a patch of {where} {current} (policy semver: patch)"
        return None


def policy_refusals(params: dict[str, Any], current: str | None) -> list[str] | None:
    """What the `policy` in an action's rendered parameters says of `current`: the
    refusals (empty: it acts), or None when there is no policy. Deploy actions carry it
    beside `image` (docker.redeploy, kubernetes.rollout) or in each of `edits` beside
    `value` (git.commit, git.pull_request)."""
    found = [params] if "policy" in params else []
    found += [e for e in params.get("edits") or [] if isinstance(e, dict) and "policy" in e]
    judged = [(VersionPolicy.model_validate(p["policy"]), p.get("image") or p.get("value"))
              for p in found if p.get("policy") is not None]  # fmt: skip
    if not judged:
        return None
    old = (tag_of(current) or current) if current else None
    refusals = [
        policy.refusal(tag_of(str(new)) or str(new), old, "current") for policy, new in judged
    ]
    return [refusal for refusal in refusals if refusal is not None]
