"""`hookwise.access`: named tokens and roles, console sessions and their form tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from hookwise.access import LOCAL, SESSION_LIFETIME, Access, AccessToken, Identity, Role
from hookwise.config import load_config
from hookwise.errors import ConfigError

OPERATOR = AccessToken(name="olivia", role=Role.OPERATOR, token=SecretStr("o" * 24))
VIEWER = AccessToken(name="victor", role=Role.VIEWER, token=SecretStr("v" * 24))
NOW = 1_800_000_000.0


def test_each_token_is_its_name_and_role():
    access = Access([OPERATOR, VIEWER])
    assert access.bearer("Bearer " + "o" * 24) == Identity("olivia", Role.OPERATOR)
    assert access.bearer("bearer " + "v" * 24) == Identity("victor", Role.VIEWER)
    assert not access.bearer("Bearer " + "v" * 24).operates  # type: ignore[union-attr]
    assert access.bearer("Bearer " + "x" * 24) is None
    assert access.bearer("Basic " + "o" * 24) is None
    assert access.bearer("") is None
    assert not access.open


def test_the_shared_api_token_is_an_operator_who_names_themselves():
    access = Access([], "s" * 20)
    assert access.bearer("Bearer " + "s" * 20) == Identity(None, Role.OPERATOR)
    assert not access.sessions and not access.open
    assert Access([]).open and LOCAL.operates


def test_a_session_lasts_its_lifetime_and_survives_no_tampering():
    access = Access([OPERATOR, VIEWER])
    cookie = access.session(Identity("victor", Role.VIEWER), now=NOW)
    assert access.from_session(cookie, now=NOW + 60) == Identity("victor", Role.VIEWER)
    assert access.from_session(cookie, now=NOW + SESSION_LIFETIME + 1) is None
    _, expires, signature = cookie.split(".")
    promoted = f"olivia.{expires}.{signature}"  # another name with victor's signature
    assert access.from_session(promoted, now=NOW) is None
    longer = f"victor.{int(expires) + 86400}.{signature}"
    assert access.from_session(longer, now=NOW) is None
    assert access.from_session("victor", now=NOW) is None
    # a new token ends the sessions signed with the old one
    rotated = Access([OPERATOR, VIEWER.model_copy(update={"token": SecretStr("w" * 24)})])
    assert rotated.from_session(cookie, now=NOW) is None


def test_form_tokens_belong_to_one_session():
    access = Access([OPERATOR, VIEWER])
    mine = access.session(Identity("olivia", Role.OPERATOR), now=NOW)
    theirs = access.session(Identity("victor", Role.VIEWER), now=NOW)
    assert access.csrf_ok(mine, access.csrf(mine))
    assert not access.csrf_ok(mine, access.csrf(theirs))
    assert not access.csrf_ok(mine, "")
    local = Access([])
    cookie = local.local_session()
    assert local.csrf_ok(cookie, local.csrf(cookie))
    assert not local.csrf_ok(local.local_session(), local.csrf(cookie))
    assert local.csrf("local.") == ""


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (
            '[{name: a, role: operator, token: "0123456789abcdef"}, '
            '{name: a, role: viewer, token: "fedcba9876543210"}]',
            "each token needs its own name; a is used twice",
        ),
        (
            '[{name: a, role: operator, token: "0123456789abcdef"}, '
            '{name: b, role: viewer, token: "0123456789abcdef"}]',
            "two entries share a token: give each person their own",
        ),
        (
            '[{name: a, role: admin, token: "0123456789abcdef"}]',
            "access[0].role: Input should be 'viewer' or 'operator'",
        ),
        (
            "[{name: a, role: viewer, token: short}]",
            "access[0].token: a token needs at least 16 characters, so it cannot be guessed",
        ),
    ],
)
def test_mistakes_in_access_are_reported_with_their_place(
    tmp_path: Path, entries: str, problem: str
):
    config = tmp_path / "hookwise.yaml"
    config.write_text(f"access: {entries}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    text = "\n".join(map(str, info.value.problems))
    assert text.startswith(f"{config}:1:")
    assert problem in text, text


def test_public_url_must_be_an_http_url(tmp_path: Path):
    config = tmp_path / "hookwise.yaml"
    config.write_text("public_url: hookwise.example.com\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert "expected an http(s) URL such as https://hookwise.example.com" in str(
        info.value.problems[0]
    )
    config.write_text("public_url: https://hookwise.example.com/\n")
    assert load_config(config).public_url == "https://hookwise.example.com"
