"""Sandboxed Jinja rendering for `with` values and `if` conditions."""

from __future__ import annotations

import time
from typing import Any

import jinja2
import pytest

from hookwise.event import Event
from hookwise.templates import (
    RenderError,
    Templates,
    is_template,
    make_environment,
    template_context,
)


def make_context(data: Any = None, **extra: Any) -> dict[str, Any]:
    event = Event(
        id="01J00000000000000000000000",
        source="artifactory",
        kind="webhook",
        domain="docker",
        event_type="promoted",
        delivery_id="d-1",
        received_at=0.0,
        data={"size": 250, "repo": "docker-local", "tags": ["a", "b"], "x": "${HOME}"}
        if data is None
        else data,
    )
    ctx = template_context(event, {"name": "r", "description": "demo"})
    ctx.update(extra)
    return ctx


@pytest.fixture
def templates() -> Templates:
    return make_environment()


# --- rendering structures ----------------------------------------------------------------


def test_nested_dicts_and_lists_are_rendered(templates):
    value = {
        "url": "https://ci/{{ data.repo }}",
        "body": {
            "size": "{{ data.size }}",
            "items": ["{{ data.tags[0] }}", "plain", 5, None, {"deep": "{{ rule.name }}"}],
        },
        "count": 3,
        "flag": True,
    }
    assert templates.render(value, make_context(), "with") == {
        "url": "https://ci/docker-local",
        "body": {"size": 250, "items": ["a", "plain", 5, None, {"deep": "r"}]},
        "count": 3,
        "flag": True,
    }


def test_render_does_not_modify_input(templates):
    value = {"a": ["{{ data.size }}"]}
    templates.render(value, make_context(), "with")
    assert value == {"a": ["{{ data.size }}"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ data.size }}", 250),
        ("{{data.size}}", 250),
        ("  {{ data.size }}  ", "  250  "),
        ("{{ data.size > 100 }}", True),
        ("{{ data.tags }}", ["a", "b"]),
        ("{{ data }}", {"size": 250, "repo": "docker-local", "tags": ["a", "b"], "x": "${HOME}"}),
        ("{{ none }}", None),
        ("{{ data.size / 2 }}", 125.0),
        ("{{ event.source }}", "artifactory"),
        ("{{ event.received_at }}", "1970-01-01T00:00:00.000+00:00"),
        ("{{ rule.description }}", "demo"),
    ],
)
def test_single_expression_keeps_native_type(templates, text, expected):
    result = templates.render(text, make_context(), "with.v")
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("size={{ data.size }}", "size=250"),
        ("{{ data.size }} bytes", "250 bytes"),
        ("{{ data.size }}{{ data.size }}", "250250"),
        ("{{ data.size }} {{ data.repo }}", "250 docker-local"),
        ("{% if data.size > 100 %}big{% else %}small{% endif %}", "big"),
        ("{{ data.tags | join(',') }}!", "a,b!"),
        ("x{# comment #}y", "xy"),
        ("tags={{ data.tags | tojson }}", 'tags=["a", "b"]'),
    ],
)
def test_mixed_text_renders_a_string(templates, text, expected):
    assert templates.render(text, make_context(), "with.v") == expected


def test_tojson_filter_single_expression_is_a_string(templates):
    assert templates.render("{{ data | tojson }}", make_context({"a": 1}), "w") == '{"a": 1}'


@pytest.mark.parametrize("text", ["plain", "{ not a template }", "100%", "$HOME", "a}}b"])
def test_plain_strings_pass_through_unchanged(templates, text):
    assert is_template(text) is False
    assert templates.render(text, make_context(), "with.v") == text


def test_plain_strings_are_not_interpreted_even_with_an_empty_context(templates):
    assert templates.render("{ x }", {}, "w") == "{ x }"


@pytest.mark.parametrize("value", [1, 2.5, True, None])
def test_non_strings_pass_through(templates, value):
    assert templates.render(value, make_context(), "with.v") is value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ x }}", True), ("{% x %}", True), ("{# x #}", True), ("${X}", True), ("{x}", False)],
)
def test_is_template(text, expected):
    assert is_template(text) is expected


def test_compiled_templates_are_cached(templates):
    assert templates.compile("a {{ b }}") is templates.compile("a {{ b }}")
    assert templates.compile_condition("a > 1") is templates.compile_condition("a > 1")


def test_only_so_many_compiled_templates_are_kept(monkeypatch):
    monkeypatch.setattr("hookwise.templates.COMPILED_KEPT", 2)
    templates = make_environment()
    first = templates.compile("1 {{ a }}")
    for text in ("2 {{ a }}", "3 {{ a }}"):
        templates.compile(text)
    assert templates.compile.cache_info().currsize == 2
    again = templates.compile("1 {{ a }}")  # compiled again, and renders the same
    assert again is not first
    assert again({"a": "x"}) == first({"a": "x"}) == "1 x"


def test_checking_a_template_keeps_nothing_compiled(templates):
    """What `hookwise check` and loading rules do for every template in every rule."""
    templates.check("hello {{ data.tag }}", bare=False)
    templates.check("data.size > 1", bare=True)
    templates.check("{{ data.tag }}", bare=False)  # one expression: compiled as a condition
    assert templates.compile.cache_info().currsize == 0
    assert templates.compile_condition.cache_info().currsize == 0
    with pytest.raises(jinja2.TemplateSyntaxError):
        templates.check("hello {{ data.tag ", bare=False)
    with pytest.raises(jinja2.TemplateSyntaxError):
        templates.check("data.size >", bare=True)


# --- undefined -----------------------------------------------------------------------------


def test_undefined_in_mixed_text_raises_render_error(templates):
    with pytest.raises(RenderError) as info:
        templates.render("size: {{ data.sise }}", make_context(), "with.message")
    error = info.value
    assert error.where == "with.message"
    assert error.template == "size: {{ data.sise }}"
    assert str(error).startswith("with.message: template 'size: {{ data.sise }}' failed: ")
    assert "has no attribute 'sise'" in str(error)
    assert "check the spelling" in str(error)


def test_undefined_error_names_nested_path(templates):
    value = {"body": {"items": ["ok {{ data.size }}", "bad {{ nope }}"]}}
    with pytest.raises(RenderError) as info:
        templates.render(value, make_context(), "with")
    assert info.value.where == "with.body.items[1]"
    assert info.value.template == "bad {{ nope }}"
    assert "'nope' is undefined" in str(info.value)


@pytest.mark.parametrize("text", ["{{ data.nope > 1 }}", "{{ steps.a.output }}", "{{ nope() }}"])
def test_undefined_used_in_single_expression_raises(templates, text):
    with pytest.raises(RenderError) as info:
        templates.render(text, make_context(), "with.v")
    assert info.value.where == "with.v"
    assert info.value.template == text


@pytest.mark.parametrize("text", ["{{ data.sise }}", "{{ nope }}"])
def test_undefined_single_expression_raises_render_error(templates, text):
    with pytest.raises(RenderError) as info:
        templates.render({"v": text}, make_context(), "with")
    assert info.value.where == "with.v"
    assert info.value.template == text


def test_evaluate_undefined_raises_render_error_at_if(templates):
    with pytest.raises(RenderError) as info:
        templates.evaluate("data.nope == 1", make_context())
    assert info.value.where == "if"
    assert info.value.template == "data.nope == 1"


def test_evaluate_returns_native_values(templates):
    ctx = make_context()
    assert templates.evaluate("data.size > 100", ctx) is True
    assert templates.evaluate("data.size + 1", ctx) == 251
    assert templates.evaluate("data.tags | length", ctx) == 2


def test_runtime_error_in_filter_is_render_error(templates):
    with pytest.raises(RenderError) as info:
        templates.render("{{ data.size / 0 }}", make_context(), "with.v")
    assert "ZeroDivisionError" in str(info.value)
    assert info.value.where == "with.v"


def test_steps_outputs_are_visible():
    event = Event("id", "s", "webhook", "d", "t", None, 0.0, {})
    ctx = template_context(event, {"name": "r"}, {"fetch": {"code": 200}})
    assert make_environment().render("{{ steps.fetch.output.code }}", ctx, "w") == 200


# --- sandbox -------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ x.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ _env.__globals__ }}",
    "{{ data.__class__ }}",
]


def _sandbox_context() -> dict[str, Any]:
    def x() -> str:
        return "x"

    return make_context(x=x)


@pytest.mark.parametrize("expression", ESCAPES)
def test_sandbox_blocks_escapes_in_text(templates, expression):
    text = f"value: {expression}"
    with pytest.raises(RenderError) as info:
        templates.render(text, _sandbox_context(), "with.v")
    assert info.value.where == "with.v"
    assert "blocked by the sandbox" in str(info.value) or "unsafe" in str(info.value)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__ }}",
        "{{ x.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ _env.__globals__ }}",
    ],
)
def test_sandbox_blocks_escapes_as_single_expression(templates, expression):
    with pytest.raises(RenderError) as info:
        templates.render(expression, _sandbox_context(), "with.v")
    assert info.value.where == "with.v"
    assert info.value.template == expression


@pytest.mark.parametrize("expression", ESCAPES)
def test_sandbox_never_leaks_objects(templates, expression):
    try:
        result = templates.render({"v": expression}, _sandbox_context(), "with")["v"]
    except RenderError:
        return
    # If nothing was raised, all that may come back is the sandbox's Undefined placeholder,
    # never the real class, function globals or subclass list.
    assert isinstance(result, jinja2.Undefined)
    assert not isinstance(result, type | dict | list | tuple)


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "cycler.__init__.__globals__",
        "_env.__globals__['os']",
    ],
)
def test_sandbox_blocks_escapes_in_conditions(templates, expression):
    with pytest.raises(RenderError) as info:
        templates.evaluate(f"({expression}) | length > 0", _sandbox_context())
    assert info.value.where == "if"


# --- ${VAR} --------------------------------------------------------------------------------


class FakeEnv:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, name: str, default: str | None = None) -> str:
        self.calls.append((name, default))
        return f"<{name}>"


def test_env_reference_calls_env_function(templates):
    fake = FakeEnv()
    result = templates.render("Bearer ${API_TOKEN}", make_context(_env=fake), "with.auth")
    assert result == "Bearer <API_TOKEN>"
    assert fake.calls == [("API_TOKEN", None)]


def test_env_reference_passes_default(templates):
    fake = FakeEnv()
    result = templates.render("${REGION:-eu-west-1}", make_context(_env=fake), "with.region")
    assert result == "<REGION>"
    assert fake.calls == [("REGION", "eu-west-1")]


def test_several_env_references_and_templates_mix(templates):
    fake = FakeEnv()
    text = "${HOST}/{{ data.repo }}/${PATH_PART:-x}"
    assert templates.render(text, make_context(_env=fake), "w") == "<HOST>/docker-local/<PATH_PART>"
    assert fake.calls == [("HOST", None), ("PATH_PART", "x")]


def test_env_reference_default_env_reads_environment(templates, monkeypatch):
    monkeypatch.setenv("HOOKWISE_TEST_VAR", "value-1")
    monkeypatch.delenv("HOOKWISE_TEST_UNSET", raising=False)
    event = make_context()["event"]
    rule = {"name": "r", "env": ["HOOKWISE_TEST_VAR", "HOOKWISE_TEST_UNSET"]}
    fields = {k: v for k, v in event.items() if k != "artifact"}
    ctx = template_context(Event(**{**fields, "received_at": 0.0}), rule)
    assert templates.render("${HOOKWISE_TEST_VAR}", ctx, "w") == "value-1"
    assert templates.render("[${HOOKWISE_TEST_UNSET}]", ctx, "w") == "[]"
    assert templates.render("${HOOKWISE_TEST_UNSET:-fallback}", ctx, "w") == "fallback"


def test_templates_cannot_read_undeclared_environment(templates, monkeypatch):
    monkeypatch.setenv("HOOKWISE_TEST_VAR", "value-1")
    ctx = make_context()
    for text in ("${HOOKWISE_TEST_VAR}", "{{ _env('HOOKWISE_TEST_VAR') }}"):
        with pytest.raises(RenderError, match="not referenced as"):
            templates.render(text, ctx, "w")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{{ data.x }}", "${HOME}"), ("home is {{ data.x }}", "home is ${HOME}")],
)
def test_event_data_with_env_syntax_is_not_expanded(templates, text, expected):
    fake = FakeEnv()
    assert templates.render(text, make_context(_env=fake), "with.v") == expected
    assert fake.calls == []


def test_event_data_with_template_syntax_is_not_rendered(templates):
    ctx = make_context({"x": "{{ 7 * 7 }}", "y": "{% for i in range(3) %}{% endfor %}"})
    assert templates.render("{{ data.x }}", ctx, "w") == "{{ 7 * 7 }}"
    assert templates.render("y={{ data.y }}", ctx, "w") == "y={% for i in range(3) %}{% endfor %}"


# --- compile errors ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{{ data.size ", "a {% if %}", "{{ 1 + }}", "{% endfor %}"])
def test_compile_raises_template_syntax_error(templates, text):
    with pytest.raises(jinja2.TemplateSyntaxError):
        templates.compile(text)


@pytest.mark.parametrize("expression", ["data.size >", "a b", "(1"])
def test_compile_condition_raises_template_syntax_error(templates, expression):
    with pytest.raises(jinja2.TemplateSyntaxError):
        templates.compile_condition(expression)


def test_render_wraps_syntax_errors_in_render_error(templates):
    with pytest.raises(RenderError) as info:
        templates.render({"a": "x {{ 1 + }}"}, make_context(), "with")
    assert info.value.where == "with.a"
    assert isinstance(info.value.__cause__, jinja2.TemplateSyntaxError)


def test_render_error_is_a_value_error():
    error = RenderError("with.a", "{{ x }}", "boom")
    assert isinstance(error, ValueError)
    assert str(error) == "with.a: template '{{ x }}' failed: boom"


def test_prepare_hook_can_add_filters():
    def prepare(env: Any) -> None:
        env.filters["shout"] = lambda value: str(value).upper() + "!"

    templates = make_environment(prepare)
    assert templates.render("{{ data.repo | shout }}", make_context(), "w") == "DOCKER-LOCAL!"


@pytest.mark.parametrize(
    "expression", ["'x' * 300000000", "[0] * 10**9", "2 ** 100000", "data.pop('size')"]
)
def test_sandbox_refuses_runaway_or_mutating_expressions(templates, expression):
    context = make_context()
    with pytest.raises(RenderError, match=r"blocked by the sandbox|refused: .* would"):
        templates.evaluate(expression, context)
    assert context["data"]["size"] == 250


AMPLIFIERS = [
    '"x"|center(200000000)',
    '"x\\nx"|indent(200000000, true)',
    '("x\\n" * 100)|indent("y" * 100000)',
    '("ab " * 10000)|wordwrap(1, wrapstring="z" * 100)',
    '"%0200000000d"|format(1)',
    '"%0200000000d" % 1',
    '"{:>200000000}".format(1)',
    '"{x:>200000000}".format_map({"x": 1})',
    'range(100000)|join("x" * 100)',
    '("a" * 1000)|replace("a", "b" * 10000)',
    '"x".ljust(200000000)',
    '"x".rjust(200000000)',
    '"x".zfill(200000000)',
    '("x"|safe).center(200000000)',
    '("\\t" * 5000).expandtabs(100000)',
    '"aaaa".replace("a", "x" * 1000000)',
    "((10**1000)**1000)**5",
    "(10**5000) * (10**5000)",
    '["x" * 100000] * 100',
    '[1]|batch(100000000, "x")|list',
    "[1]|slice(100000000)|list",
    "([[1] * 100000] * 10)|sum(start=[])",
    '(1).to_bytes(1000000000, "big")',
    'range(400)|map("center", 1000000)|list',
    '"".join(range(400)|map("center", 1000000))',
    '("{0}" * 200).format("y" * 100000)',
    '("{a}" * 200).format_map({"a": "y" * 100000})',
    '("%(a)s" * 200) % {"a": "y" * 100000}',
    '("%s" * 200)|format(a="y" * 100000)',
    '("1" * 1000)|replace(1, "y" * 100000)',
]


@pytest.mark.parametrize("expression", AMPLIFIERS)
def test_what_a_template_can_amplify_is_refused_before_it_allocates(expression: str):
    templates = make_environment(timeout=5)
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"refused: .* would|blocked by the sandbox"):
        templates.evaluate(expression, make_context())
    assert time.monotonic() - started < 1.0


def test_doubling_in_a_loop_stops_at_the_output_limit():
    template = (
        '{% set ns = namespace(s="x") %}{% for i in range(40) %}'
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    )
    with pytest.raises(RenderError, match=r"refused: a `~` concatenation would be longer"):
        make_environment(max_output=4096).render(template, {}, "with.v")


def test_shared_references_count_as_printed():
    # 100 references to the same 100 kB string are 10 MB once printed or sent as JSON.
    templates = make_environment()
    with pytest.raises(RenderError, match="refused"):
        templates.render(
            "{% set s = 'x' * 100000 %}{{ [s, s, s, s, s, s, s, s, s, s, s] }}", {}, "w"
        )
    with pytest.raises(RenderError, match=r"refused: .*\|tojson"):
        templates.render(
            "{% set s = 'x' * 100000 %}{% set l = [s, s, s, s, s] %}{{ [l, l, l]|tojson }}", {}, "w"
        )


def test_ordinary_templates_are_untouched_by_the_limits():
    templates = make_environment(max_output=4096)
    context = make_context()
    text = (
        "{{ data.repo|upper }} {{ 'a-b'.split('-')|join(',') }} {{ '%s=%d'|format('n', 3) }} "
        "{{ '{}!'.format(data.size) }} {{ 'x'|center(7) }}|{{ data.tags|tojson }}"
    )
    assert templates.render(text, context, "w") == ('DOCKER-LOCAL a,b n=3 250!    x   |["a", "b"]')


def test_the_whole_output_is_bounded():
    with pytest.raises(RenderError, match="refused: the rendered text would be longer than 4096"):
        make_environment(max_output=4096).render(
            "{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", {}, "with.body"
        )


def test_a_template_that_loops_too_long_is_stopped_at_its_deadline():
    templates = make_environment(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"took longer than 0\.5s") as info:
        templates.render(
            {
                "a": "fine",
                "b": "{% for i in range(100000) %}{% for j in range(100000) %}"
                "{% endfor %}{% endfor %}",
            },
            {},
            "rule r, deploy",
        )
    assert 0.5 <= time.monotonic() - started < 1.5
    assert info.value.where == "rule r, deploy.b"


def test_a_caller_with_less_time_shortens_the_deadline():
    templates = make_environment(timeout=30)
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"took longer than 0\.3s"):
        templates.render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            {},
            "w",
            timeout=0.3,
        )
    assert time.monotonic() - started < 1.0


def test_urlize_is_not_available():
    # Its regex is quadratic: one call on a long field would outlive any deadline.
    with pytest.raises(RenderError, match="No filter named 'urlize'"):
        make_environment().evaluate("'http://x'|urlize", {})
