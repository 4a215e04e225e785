"""Glob semantics used by rule dimensions, `match` and `exclude`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hookwise.errors import GlobError
from hookwise.rules import Rule
from hookwise.rules.globs import Glob, compile_glob, is_literal


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "", True),
        ("*", "docker-local", True),
        ("*", "a/b", False),
        ("docker-*", "docker-local", True),
        ("docker-*", "docker-local/sub", False),
        ("*/*", "a/b", True),
        ("*/*", "a/b/c", False),
        ("a/*/c", "a/b/c", True),
        ("a/*/c", "a/b/x/c", False),
    ],
)
def test_star_does_not_cross_slash(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("**", "", True),
        ("**", "a/b/c", True),
        ("a/**", "a/b/c", True),
        ("a/**", "b/a/c", False),
        ("**/c", "a/b/c", True),
        ("a/**/d", "a/b/c/d", True),
        ("a/**/d", "a/b/c/e", False),
        ("repo-**", "repo-x/y", True),
    ],
)
def test_double_star_crosses_slash(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("v?", "v1", True),
        ("v?", "v", False),
        ("v?", "v12", False),
        ("a?c", "a/c", False),
        ("a?c", "a.c", True),
        ("???", "abc", True),
        ("???", "ab", False),
    ],
)
def test_question_mark_is_one_character_but_not_slash(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("[abc]", "a", True),
        ("[abc]", "c", True),
        ("[abc]", "d", False),
        ("[abc]", "ab", False),
        ("x[abc]y", "xby", True),
        ("[!abc]", "d", True),
        ("[!abc]", "a", False),
        ("[!abc]", "", False),
        ("[a-z]", "m", True),
        ("[a-z]", "M", False),
        ("[a-z]", "5", False),
        ("v[0-9][0-9]", "v42", True),
        ("v[0-9][0-9]", "v4x", False),
        ("[!0-9]*", "x12", True),
        ("[!0-9]*", "1xx", False),
        ("[]]", "]", True),
        ("[!]]", "]", False),
        ("[!]]", "x", True),
        ("[.]", ".", True),
        ("[.]", "x", False),
        ("[^]", "^", True),
        ("[^]", "a", False),
        ("[\\]", "\\", True),
    ],
)
def test_character_classes(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("Docker", "docker", False),
        ("docker", "DOCKER", False),
        ("docker", "docker", True),
        ("D*", "docker", False),
        ("[A-Z]*", "docker", False),
    ],
)
def test_matching_is_case_sensitive(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("docker", "docker-local"),
        ("docker", "my-docker"),
        ("local", "docker-local-staging"),
        ("qa-*", "x-qa-1"),
        ("*-qa", "x-qa-1"),
        ("a?", "abc"),
    ],
)
def test_matching_is_anchored_at_both_ends(pattern, value):
    assert Glob(pattern).matches(value) is False


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "axb", False),
        ("(x)", "(x)", True),
        ("(x)", "x", False),
        ("a+", "a+", True),
        ("a+", "aa", False),
        ("a|b", "a|b", True),
        ("a|b", "a", False),
        ("$x^", "$x^", True),
        ("{1,2}", "{1,2}", True),
        ("a{2}", "aa", False),
        ("\\d", "\\d", True),
        ("\\d", "5", False),
        ("1.0.*", "1.0.7", True),
        ("1.0.*", "1x0x7", False),
    ],
)
def test_regex_metacharacters_are_literal(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


def test_newlines_are_ordinary_characters():
    assert Glob("a*b").matches("a\nb") is True
    assert Glob("a?b").matches("a\nb") is True


@pytest.mark.parametrize(("pattern", "position"), [("[abc", 0), ("qa-[0-9", 3), ("x[", 1)])
def test_unclosed_bracket_raises_helpful_glob_error(pattern, position):
    with pytest.raises(GlobError) as info:
        compile_glob(pattern)
    message = str(info.value)
    assert message == (f"invalid glob {pattern!r}: '[' at position {position} is never closed")
    assert isinstance(info.value, ValueError)


def test_unclosed_bracket_raises_from_glob_match_too():
    with pytest.raises(GlobError, match="never closed"):
        Glob("a[b").matches("ab")


def test_empty_class_is_unclosed():
    # `]` right after `[` is a member, so `[]` has no closing bracket.
    with pytest.raises(GlobError, match="never closed"):
        compile_glob("[]")


def test_reversed_range_raises_glob_error_naming_the_pattern():
    with pytest.raises(GlobError) as info:
        compile_glob("[z-a]")
    assert str(info.value).startswith("invalid glob '[z-a]': ")
    assert "range" in str(info.value)


def test_bad_glob_in_rule_is_a_validation_error():
    with pytest.raises(ValidationError) as info:
        Rule.model_validate(
            {"name": "r", "when": {"source": "art[ifactory"}, "actions": [{"uses": "log"}]}
        )
    assert "invalid glob 'art[ifactory'" in str(info.value)
    assert "never closed" in str(info.value)


def test_open_bracket_inside_class_is_literal_without_warnings():
    assert Glob("[[]").matches("[") is True
    assert Glob("x[[]]y").matches("x[]y") is True


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("artifactory", True),
        ("docker-local.staging", True),
        ("a+b(c)|d", True),
        ("", True),
        ("a]b", True),
        ("*", False),
        ("qa-*", False),
        ("v?", False),
        ("[abc]", False),
        ("a[", False),
        ("**", False),
    ],
)
def test_is_literal(pattern, expected):
    assert is_literal(pattern) is expected


def test_literal_patterns_match_only_themselves():
    for pattern in ["artifactory", "a.b", "(x)", "a]b", ""]:
        assert is_literal(pattern)
        assert Glob(pattern).matches(pattern)
        assert not Glob(pattern).matches(pattern + "x")
        assert not Glob(pattern).matches("x" + pattern)


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("team/api", "team/api"), ("team/*", "team/"), ("v?.*", "v"), ("[ab]x", ""), ("**", "")],
)
def test_prefix_is_the_text_every_match_starts_with(pattern, prefix):
    assert Glob(pattern).prefix == prefix


def test_rules_carry_their_globs_compiled_when_they_load():
    rule = Rule.model_validate(
        {
            "name": "r",
            "when": {"source": "art*", "match": {"data.image": ["team/*", "x"]}},
            "actions": [{"uses": "log"}],
        }
    )
    globs = [*rule.when.source, *rule.when.domain, *rule.when.match["data.image"]]
    assert all(isinstance(glob, Glob) for glob in globs)
    assert rule.when.model_dump()["match"] == {"data.image": ["team/*", "x"]}


@pytest.mark.parametrize(
    ("pattern", "compiled"),
    [("x", False), ("team/*", False), ("repo-**", False), ("*", False), ("**", False),
     ("*/x", True), ("v?", True), ("a*b*", True), ("[ab]*", True), ("a/**/d", True)],
)  # fmt: skip
def test_only_patterns_beyond_a_literal_and_a_trailing_star_hold_a_regex(pattern, compiled):
    assert (Glob(pattern).regex is not None) is compiled


@given(
    prefix=st.text("ab/-.", max_size=4),
    tail=st.sampled_from(["", "*", "**"]),
    value=st.text("ab/-.", max_size=8),
)
def test_matching_by_text_agrees_with_the_regex_it_replaces(prefix, tail, value):
    pattern = prefix + tail
    assert Glob(pattern).matches(value) is (compile_glob(pattern).fullmatch(value) is not None)


def test_rules_share_one_compiled_glob_per_pattern():
    """Ten thousand rules naming `docker` and `pushed` hold two globs, not twenty thousand."""
    from hookwise.rules import Rule

    first, second = (
        Rule.model_validate(
            {"name": name, "when": {"domain": "docker", "match": {"data.tag": "v*"}},
             "actions": [{"uses": "log", "with": {"message": "x"}}]}
        )
        for name in ("a", "b")
    )  # fmt: skip
    assert first.when.domain[0] is second.when.domain[0]
    assert first.when.match["data.tag"][0] is second.when.match["data.tag"][0]
