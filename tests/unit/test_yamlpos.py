"""YAML loading with positions: where keys and values are, duplicate keys, `${VAR}` expansion,
merge keys, the depth and alias limits, unreadable files, and where problems are placed."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from hookwise.yamlpos import MAX_DEPTH, Document, format_path, load_file, load_text


def messages(doc: Document) -> list[str]:
    return [str(problem) for problem in doc.problems]


def test_keys_and_values_are_positioned_by_line_and_column():
    doc = load_text("listen: 127.0.0.1:8080\nworker:\n  lease: 60s\n", "f.yaml")
    assert doc.data == {"listen": "127.0.0.1:8080", "worker": {"lease": "60s"}}
    assert doc.key_pos == {("listen",): (1, 1), ("worker",): (2, 1), ("worker", "lease"): (3, 3)}
    assert doc.value_pos[("listen",)] == (1, 9)
    assert doc.value_pos[("worker", "lease")] == (3, 10)
    assert doc.problems == []


def test_list_items_are_positioned_by_their_index():
    doc = load_text("allow:\n  - 10.0.0.0/8\n  - {host: a}\n", "f.yaml")
    assert doc.data == {"allow": ["10.0.0.0/8", {"host": "a"}]}
    assert doc.value_pos[("allow", 0)] == (2, 5)
    assert doc.value_pos[("allow", 1, "host")] == (3, 12)
    assert doc.key_pos[("allow", 1, "host")] == (3, 6)


def test_a_duplicate_key_is_reported_at_its_second_occurrence_and_the_first_value_is_kept():
    doc = load_text("worker:\n  lease: 10s\n  poll_interval: 1s\n  lease: 20s\n", "f.yaml")
    assert messages(doc) == [
        "f.yaml:4:3: [error] worker.lease: duplicate key 'lease' (first defined on line 2); "
        "remove one of them"
    ]
    assert doc.data == {"worker": {"lease": "10s", "poll_interval": "1s"}}


def test_a_mapping_key_that_is_not_a_scalar_is_refused_at_the_key():
    doc = load_text("a: 1\n? [x, y]\n: 2\n", "f.yaml")
    assert messages(doc) == ["f.yaml:2:3: [error] mapping keys must be plain scalars"]
    assert doc.data == {"a": 1}


@pytest.mark.parametrize(
    ("written", "env", "expected"),
    [
        ("${HW_TOKEN}", {"HW_TOKEN": "s3cret"}, "s3cret"),
        ("Bearer ${HW_TOKEN}!", {"HW_TOKEN": "s3cret"}, "Bearer s3cret!"),
        ("${HW_TOKEN:-fallback}", {"HW_TOKEN": "s3cret"}, "s3cret"),
        ("${HW_TOKEN:-fallback}", {}, "fallback"),
        ("[${HW_TOKEN:-}]", {}, "[]"),
        # Set to the empty string counts as set: the default is not used.
        ("[${HW_TOKEN:-fallback}]", {"HW_TOKEN": ""}, "[]"),
        ("${HW_A}:${HW_B:-9}", {"HW_A": "host"}, "host:9"),
    ],
)
def test_env_references_in_values_are_expanded_as_documented(written, env, expected):
    doc = load_text(f"value: '{written}'\n", "f.yaml", env=env)
    assert doc.problems == []
    assert doc.data == {"value": expected}


def test_an_unset_variable_without_default_is_reported_at_the_value_that_uses_it():
    doc = load_text("a: 1\nsecret: x-${HW_ONE}-${HW_TWO}\n", "f.yaml", env={})
    assert messages(doc) == [
        "f.yaml:2:9: [error] environment variable HW_ONE is not set; "
        "export it or write ${HW_ONE:-default}",
        "f.yaml:2:9: [error] environment variable HW_TWO is not set; "
        "export it or write ${HW_TWO:-default}",
    ]


def test_an_expanded_value_is_not_expanded_again():
    doc = load_text("a: ${HW_OUTER}\n", "f.yaml", env={"HW_OUTER": "${HW_INNER}", "HW_INNER": "x"})
    assert doc.problems == []
    assert doc.data == {"a": "${HW_INNER}"}


def test_keys_and_non_string_values_are_not_expanded():
    doc = load_text("${HW_KEY}: v\nn: 5\nflag: true\n", "f.yaml", env={"HW_KEY": "k"})
    assert doc.problems == []
    assert doc.data == {"${HW_KEY}": "v", "n": 5, "flag": True}


def test_without_an_environment_references_are_left_as_written():
    doc = load_text("a: ${HW_SURELY_UNSET}\n", "f.yaml")
    assert doc.problems == []
    assert doc.data == {"a": "${HW_SURELY_UNSET}"}


def test_a_merge_key_fills_in_only_what_the_mapping_does_not_say_itself():
    doc = load_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.problems == []
    assert doc.data["m"] == {"x": 1, "y": 3}
    assert doc.value_pos[("m", "y")] == (4, 6)


def test_with_a_list_of_merged_anchors_the_earlier_anchor_wins():
    text = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n"
    doc = load_text(text, "f.yaml")
    assert doc.problems == []
    assert doc.data["c"] == {"x": 1, "y": 1, "z": 3}


def test_an_explicit_key_keeps_its_own_position_when_a_merged_anchor_has_the_same_key():
    doc = load_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.key_pos[("m", "y")] == (4, 3)
    assert str(doc.problem(("m", "y"), "m.y: unknown key 'y'", at_key=True)) == (
        "f.yaml:4:3: [error] m.y: unknown key 'y'"
    )


def test_merging_one_anchor_into_thousands_of_mappings_stays_within_the_alias_budget():
    items = "".join(f"  - <<: *base\n    n: {i}\n" for i in range(2000))
    doc = load_text("base: &base {x: 1, y: [1, 2, 3]}\nitems:\n" + items, "f.yaml")
    assert doc.problems == []
    assert len(doc.data["items"]) == 2000
    assert doc.data["items"][1999] == {"n": 1999, "x": 1, "y": [1, 2, 3]}


def test_nesting_exactly_max_depth_levels_deep_loads():
    doc = load_text("[" * MAX_DEPTH + "]" * MAX_DEPTH, "f.yaml")
    assert doc.problems == []
    innermost = doc.data
    for _ in range(MAX_DEPTH - 1):
        [innermost] = innermost
    assert innermost == []


def test_nesting_one_level_beyond_max_depth_is_refused_where_that_level_starts():
    # The two mappings are levels 1 and 2, so the 63rd bracket opens level 65.
    brackets = MAX_DEPTH - 1
    fits = load_text("a:\n  b: " + "[" * (brackets - 1) + "]" * (brackets - 1) + "\n", "f.yaml")
    assert fits.problems == []
    doc = load_text("a:\n  b: " + "[" * brackets + "]" * brackets + "\n", "f.yaml")
    assert messages(doc) == [
        "f.yaml:2:68: [error] YAML too large: nested more than 64 levels deep; "
        "flatten the structure"
    ]
    assert doc.data is None


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_a_billion_laughs_document_is_refused_and_nothing_of_it_is_returned():
    doc = load_text(BILLION_LAUGHS, "f.yaml")
    [problem] = doc.problems
    assert problem.file == "f.yaml"
    # a..d expand to about 8,300 values; `e` would be 66,000: the budget runs out inside it.
    assert problem.message == (
        "YAML too large: e[0][3][2][5][0]: aliases expand to far more values than the file "
        "holds (more than 10 times); use fewer nested aliases"
    )
    assert doc.data is None


def test_an_alias_that_refers_to_itself_is_reported_at_the_anchor_and_left_empty():
    doc = load_text("a: 1\nloop: &l {self: *l, b: 2}\n", "f.yaml")
    assert messages(doc) == ["f.yaml:2:7: [error] loop.self: an alias refers to itself"]
    assert doc.data == {"a": 1, "loop": {"self": None, "b": 2}}


def test_a_syntax_error_is_reported_at_its_position_and_no_data_is_returned():
    doc = load_text("a: [1,\n", "f.yaml")
    assert messages(doc) == [
        "f.yaml:2:1: [error] YAML syntax error: expected the node content, but found '<stream end>'"
    ]
    assert doc.data is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_is_none_without_problems(text):
    doc = load_text(text, "f.yaml")
    assert (doc.data, doc.problems) == (None, [])


def test_a_control_character_is_reported_as_a_problem_not_raised():
    doc = load_text("a: 1\nb: x\x07y\n", "f.yaml")
    assert messages(doc) == [
        "f.yaml:2:5: [error] YAML syntax error: character #x07 is not allowed in a YAML file; "
        "remove it"
    ]
    assert doc.data is None
    # Past the first read buffer too: PyYAML checks each chunk as it reads it.
    late = load_text("a: 1\n" + "b: 2\n" * 3000 + "c: \x1b\n", "f.yaml")
    assert [(p.line, p.col) for p in late.problems] == [(3002, 4)]


def test_a_file_that_is_not_utf8_is_reported_at_the_line_of_the_first_bad_byte(tmp_path: Path):
    path = tmp_path / "big.yaml"
    # Past the size of one read buffer, so the line must be counted over the whole file.
    path.write_bytes(b"a: 1\r\n" * 5000 + b"b: '\xe9t\xe9'\n")
    doc = load_file(str(path))
    assert messages(doc) == [f"{path}:5001:1: [error] the file is not UTF-8 text; save it as UTF-8"]
    assert doc.data is None


def test_load_file_expands_env_and_ignores_a_utf8_byte_order_mark(tmp_path: Path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffsecret: ${HW_SECRET}\n".encode())
    doc = load_file(str(path), env={"HW_SECRET": "s"})
    assert doc.problems == []
    assert doc.data == {"secret": "s"}
    assert doc.key_pos[("secret",)] == (1, 1)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("missing.yaml", "No such file or directory"), (".", "Is a directory")],
)
def test_an_unreadable_file_is_one_problem_at_line_one(tmp_path: Path, name, reason):
    path = str(tmp_path / name)
    doc = load_file(path)
    assert messages(doc) == [f"{path}:1:1: [error] cannot read file: {reason}"]
    assert doc.data is None


POSITIONED = load_text("a: x\nb: {c: [1, {d: 2}]}\n", "f.yaml")


@pytest.mark.parametrize(
    ("path", "at_key", "where"),
    [
        (("b", "c", 1, "d"), False, (2, 16)),  # the value 2
        (("b", "c", 1, "d"), True, (2, 13)),  # the key d
        (("b", "c", 1, "e", "f"), False, (2, 12)),  # missing: the nearest ancestor, {d: 2}
        (("b", "c", 1, "e"), True, (2, 12)),  # a list item has no key: its value instead
        (("b", "c", 7), False, (2, 8)),  # past the end of the list: the list
        (("zz",), True, (1, 1)),  # nothing of it: the document
        ((), False, (1, 1)),
    ],
)
def test_a_problem_is_placed_at_the_path_or_its_nearest_positioned_ancestor(path, at_key, where):
    problem = POSITIONED.problem(path, "message", at_key=at_key)
    assert str(problem) == "f.yaml:{}:{}: [error] message".format(*where)


def test_a_problem_in_a_document_without_positions_is_at_line_one():
    doc = load_text("", "empty.yaml")
    assert str(doc.problem(("rules", 0), "rules[0]: missing")) == (
        "empty.yaml:1:1: [error] rules[0]: missing"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("rules", 2, "when"), "rules[2].when"),
        (("rules", 0, "actions", 1, "with", "url"), "rules[0].actions[1].with.url"),
        (("worker",), "worker"),
        ((0, "name"), "[0].name"),
        (("m", 0, 1), "m[0][1]"),
        ((), ""),
    ],
)
def test_format_path_writes_the_breadcrumb_users_see(path, expected):
    assert format_path(path) == expected


class Taken:
    """A stream handler that records what it was handed and what the positions said then."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[object, ...], object, tuple[int, int] | None]] = []

    def __call__(self, doc: Document, path: tuple[object, ...], value: object) -> str:
        self.items.append((path, value, doc.value_pos.get((*path, "name"))))
        return f"taken {path[1]}"


def test_a_streamed_list_hands_over_each_item_in_order_with_its_positions():
    taken = Taken()
    text = "rules:\n  - name: a\n  - name: b\n    size: 2\nother: [1]\n"
    doc = load_text(text, "f.yaml", stream=("rules", taken))
    assert taken.items == [
        (("rules", 0), {"name": "a"}, (2, 11)),
        (("rules", 1), {"name": "b", "size": 2}, (3, 11)),
    ]
    # What the handler returned stands in for each item; only the item's own position
    # is kept, and the rest of the document is loaded as usual.
    assert doc.data == {"rules": ["taken 0", "taken 1"], "other": [1]}
    assert doc.value_pos[("rules", 1)] == (3, 5)
    assert ("rules", 1, "size") not in doc.value_pos
    assert doc.value_pos[("other", 0)] == (5, 9)


def test_anchored_items_are_handed_over_too_and_stay_for_their_aliases():
    taken = Taken()
    text = (
        "rules:\n"
        "  - name: a\n    retry: &r {attempts: 5}\n"
        "  - name: b\n    retry: {<<: *r, backoff: 1}\n"
        "  - &whole {name: c}\n"
        "  - *whole\n"
    )
    doc = load_text(text, "f.yaml", stream=("rules", taken))
    assert doc.problems == []
    assert [(path, value) for path, value, _ in taken.items] == [
        (("rules", 0), {"name": "a", "retry": {"attempts": 5}}),
        (("rules", 1), {"name": "b", "retry": {"attempts": 5, "backoff": 1}}),
        (("rules", 2), {"name": "c"}),
        (("rules", 3), {"name": "c"}),
    ]
    # An alias may refer to anchored items, so they are built again where they stand.
    assert doc.data["rules"] == ["taken 0", "taken 1", {"name": "c"}, {"name": "c"}]


def test_the_items_of_an_anchored_list_are_handed_over_and_kept():
    taken = Taken()
    doc = load_text("rules: &all\n  - name: a\n  - name: b\n", "f.yaml", stream=("rules", taken))
    assert [value for _, value, _ in taken.items] == [{"name": "a"}, {"name": "b"}]
    assert doc.data == {"rules": [{"name": "a"}, {"name": "b"}]}


@pytest.mark.parametrize(
    "text",
    [
        "- rules: [{name: a}]\n",  # not under the root mapping
        "config:\n  rules: [{name: a}]\n",  # nested deeper
        "rule: [{name: a}]\n",  # another key
    ],
)
def test_only_the_list_at_the_root_key_is_streamed(text):
    taken = Taken()
    load_text(text, "f.yaml", stream=("rules", taken))
    assert taken.items == []


def test_a_syntax_error_after_streamed_items_still_returns_no_data():
    taken = Taken()
    doc = load_text("rules:\n  - name: a\n  - name: [b\n", "f.yaml", stream=("rules", taken))
    assert [path for path, _, _ in taken.items] == [("rules", 0)]
    assert doc.data is None
    assert len(doc.problems) == 1 and "YAML syntax error" in doc.problems[0].message


def test_aliases_in_streamed_items_are_held_to_the_alias_budget():
    anchors = "base: &b [" + ", ".join(["x"] * 100) + "]\n"
    items = "".join(f"  - [{', '.join(['*b'] * 100)}]\n" for _ in range(50))
    taken = Taken()
    doc = load_text(anchors + "rules:\n" + items, "f.yaml", stream=("rules", taken))
    assert doc.data is None
    assert "aliases expand to far more values" in messages(doc)[0]


def test_streaming_a_long_list_never_holds_its_whole_node_tree():
    """The reason streaming exists: 10,000 rules once peaked at 130 MB of YAML nodes."""
    text = "rules:\n" + "".join(
        f"  - name: rule-{n}\n    when: {{source: s, match: {{data.repo: team-{n}-*}}}}\n"
        "    actions: [{uses: log, with: {message: '{{ data.tag }}'}}]\n"
        for n in range(600)
    )
    alive: list[int] = []

    def count_nodes(doc: Document, path: tuple[object, ...], value: object) -> None:
        if path[1] == 599:
            alive.append(sum(isinstance(o, yaml.Node) for o in gc.get_objects()))

    load_text(text, "f.yaml", stream=("rules", count_nodes))
    whole = _count(yaml.compose(text))
    # Each item leaves an empty node behind in its list; nothing else of it stays.
    assert whole > 600 * 10
    assert alive[0] < 600 + whole / 10


def _count(node: yaml.Node) -> int:
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(_count(key) + _count(value) for key, value in node.value)
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(_count(item) for item in node.value)
    return 1
