"""Version policies: which incoming tags a deploy action acts on, and the reasons it gives."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from hookwise.images import tag_of
from hookwise.versions import Version, VersionPolicy


@pytest.mark.parametrize(
    ("policy", "new", "current", "refusal"),
    [
        ({"semver": "major"}, "1.5.0", "1.4.9", None),
        ({"semver": "major"}, "2.0.0", "1.4.9", None),
        ({"semver": "major"}, "1.4.0", "1.5.2", "1.4.0 is not newer than running 1.5.2"),
        ({"semver": "major"}, "1.5.2", "1.5.2", "1.5.2 is not newer than running 1.5.2"),
        ({"semver": "major"}, "v1.6.0", "v1.5.2", None),
        ({"semver": "major"}, "latest", "1.5.2",
         "latest is not a semantic version (policy semver: major)"),
        ({"semver": "major"}, "1.6.0", "latest", None),
        ({"semver": "major"}, "1.6.0", None, None),
        ({"semver": "major"}, "1.6.0-rc.1", "1.5.0",
         "1.6.0-rc.1 is a pre-release; set prereleases: true to deploy those"),
        ({"semver": "major", "prereleases": True}, "1.6.0-rc.1", "1.5.0", None),
        ({"semver": "major", "prereleases": True}, "1.6.0-rc.2", "1.6.0-rc.10",
         "1.6.0-rc.2 is not newer than running 1.6.0-rc.10"),
        ({"semver": "major", "prereleases": True}, "1.6.0", "1.6.0-rc.10", None),
        ({"semver": "minor"}, "1.9.0", "1.4.0", None),
        ({"semver": "minor"}, "2.0.0", "1.4.0",
         "2.0.0 is a new major version; running is 1.4.0 (policy semver: minor)"),
        ({"semver": "patch"}, "1.4.7", "1.4.0", None),
        ({"semver": "patch"}, "1.5.0", "1.4.0",
         "1.5.0 is not a patch of running 1.4.0 (policy semver: patch)"),
        ({"glob": "1.4.*"}, "1.4.2", "1.4.1", None),
        ({"glob": "1.4.*"}, "1.5.0", "1.4.1", "1.5.0 does not match the policy's glob 1.4.*"),
        ({"glob": "1.4.*"}, "1.4.1", "1.4.1", "1.4.1 is already running"),
        ({"regex": r"^release-\d+$"}, "release-7", "release-6", None),
        ({"regex": r"^release-\d+$"}, "dev-7", "release-6",
         r"dev-7 does not match the policy's regex ^release-\d+$"),
        ({"force": True}, "0.1.0", "9.9.9", None),
    ],
)  # fmt: skip
def test_a_policy_admits_or_says_why_not(policy, new, current, refusal):
    assert VersionPolicy.model_validate(policy).refusal(new, current, "running") == refusal


def test_semver_precedence_follows_the_spec():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
               "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0",
               "2.0.0"]  # fmt: skip
    versions = [Version(text) for text in ordered]
    assert all(later > earlier for earlier, later in itertools.pairwise(versions))
    assert not Version("1.0.0+build.5") > Version("1.0.0+build.1")  # build metadata is ignored


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({}, "give exactly one of semver"),
        ({"semver": "minor", "force": True}, "give exactly one of semver"),
        ({"semver": "newest"}, "Input should be 'major', 'minor' or 'patch'"),
        ({"glob": "1.[4"}, "never closed"),
        ({"regex": "("}, "regex '(' is invalid"),
    ],
)
def test_policy_mistakes_are_caught_when_rules_load(policy, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("[", r"\[")):
        VersionPolicy.model_validate(policy)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("registry:5000/team/app:1.5.0", "1.5.0"),
        ("app:v2", "v2"),
        ("registry:5000/team/app", None),
        ("app@sha256:" + "a" * 64, None),
        ("app:1.5@sha256:" + "a" * 64, "1.5"),
        ("not a reference:1", None),
    ],
)
def test_the_tag_of_an_image_reference(image, tag):
    assert tag_of(image) == tag
