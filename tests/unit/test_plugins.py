"""Every hook, exercised by a plugin loaded from `plugins_dir` into a real server."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest

from hookwise import hookspecs
from tests.cli import invoke
from tests.conftest import project
from tests.served import Served

PLUGIN = """
import json
import time
from pathlib import Path

from pydantic import BaseModel

from hookwise.plugin import (
    ActionSpec,
    Incoming,
    IntegrationSpec,
    SourceKind,
    VerificationError,
    hookimpl,
)


class EchoParams(BaseModel):
    text: str
    times: int = 1


class EchoSettings(BaseModel):
    prefix: str
    shout: bool = False


async def echo(params, context):
    context.log.info(f"echo attempt {context.attempt}")
    text = context.settings.prefix + params.text * params.times
    output = {"echo": text.upper() if context.settings.shout else text, "rule": context.rule}
    return {**output, "key": context.idempotency_key}


def nap(params, context):
    time.sleep(0.2)  # a blocking client: must run in a thread, not on the event loop
    return {"slept": True}


class PlainOptions(BaseModel):
    token: str


PROJECT = Path(__file__).resolve().parents[1]  # the folder of hookwise.yaml


def verify(delivery, options):
    if delivery.header("x-token") != options.token:
        raise VerificationError("bad x-token")


def normalize(delivery, options):
    body = delivery.json()
    return [Incoming(body["kind"], body["what"], body, delivery_id=delivery.header("x-delivery"))]


@hookimpl
def hookwise_actions():
    return [ActionSpec("echo", EchoParams, echo, "repeat text", integration="echo-service"),
            ActionSpec("nap", EchoParams, nap, "block for a moment")]


@hookimpl
def hookwise_integrations():
    return [IntegrationSpec("echo-service", EchoSettings, "where echoes go")]


@hookimpl
def hookwise_sources():
    return [SourceKind("plain", PlainOptions, verify, normalize, "token in x-token")]


@hookimpl
def hookwise_prepare_jinja(env):
    env.filters["reverse_text"] = lambda value: str(value)[::-1]


@hookimpl
def hookwise_startup(config):
    (PROJECT / "started.txt").write_text(config.listen)


@hookimpl
async def hookwise_shutdown(config):
    (PROJECT / "stopped.txt").write_text("bye")


@hookimpl(wrapper=True)
def hookwise_invoke_action(spec, params, context):
    attempt = yield

    async def traced():
        started = time.monotonic()
        output = await attempt
        with open(PROJECT / "traced.jsonl", "a") as trace:
            line = {"action": spec.name, "rule": context.rule, "step": context.action_id,
                    "took": time.monotonic() - started}
            trace.write(json.dumps(line) + "\\n")
        return output

    return traced()
"""

RULES = """\
rules:
  - name: plain-echo
    when: {source: plain}
    actions:
      - id: first
        uses: echo
        with: {text: "{{ data.what | reverse_text }}", times: "{{ data.n }}"}
      - uses: nap
        with: {text: "{{ steps.first.output.echo }}"}
      - id: loud
        uses: echo
        with: {text: "{{ data.what }}"}
        connection: {shout: true}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("plugins")
    (root / "plugins").mkdir()
    (root / "plugins" / "example.py").write_text(PLUGIN)
    extra = (
        "  plain:\n    kind: plain\n    token: t0k\nplugins_dir: plugins/\n"
        "integrations:\n  echo-service: {prefix: '> '}\n"
    )
    instance = Served(root, RULES, extra=extra).start()
    yield instance
    instance.stop()


def post_plain(server: Served, delivery: str, n: int = 2):
    body = json.dumps({"kind": "demo", "what": "abc", "n": n}).encode()
    headers = {"x-token": "t0k", "x-delivery": delivery}
    return server.post(body, source="plain", headers=headers)


def test_hook_hookwise_actions(server: Served):
    event_id = post_plain(server, "d-1").json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert run["status"] == "succeeded", run
    assert run["output"]["first"]["echo"] == "> cbacba"
    assert run["output"]["first"]["rule"] == "plain-echo"
    assert len(run["output"]["first"]["key"]) == 32
    assert run["output"]["nap#2"] == {"slept": True}
    assert run["log"][0]["message"] == "echo attempt 1"


def test_hook_hookwise_sources(server: Served):
    refused = server.post(b"{}", source="plain", headers={"x-token": "nope"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "bad x-token"
    first = post_plain(server, "d-2", n=1).json()
    again = post_plain(server, "d-2", n=3).json()  # same sender id, different body
    assert again == {"event_id": first["event_id"], "duplicate": True}
    event = server.event(first["event_id"])["event"]
    assert (event["kind"], event["domain"], event["event_type"]) == ("plain", "demo", "abc")
    assert event["delivery_id"] == "d-2"
    assert "x-token" not in event["headers"]


def test_hook_hookwise_prepare_jinja(server: Served):
    event_id = post_plain(server, "d-3", n=1).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded"})
    assert run["output"]["first"]["echo"] == "> cba"


def test_hook_hookwise_integrations(server: Served, tmp_path: Path):
    # Settings come from `integrations:` in the config; `connection:` overrides per action.
    event_id = post_plain(server, "d-4", n=1).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded"})
    assert run["output"]["first"]["echo"] == "> cba"
    assert run["output"]["loud"]["echo"] == "> ABC"
    # A missing setting is a check error naming where to add it.
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "example.py").write_text(PLUGIN)
    extra = "  plain:\n    kind: plain\n    token: t\nplugins_dir: plugins/\n"
    root = project(tmp_path, RULES, extra=extra)
    result = invoke("check", cwd=root)
    assert result.returncode == 1
    assert (
        "rules/main.yaml:6:15: [error] rules[0].actions[0].uses: echo needs "
        "`integrations.echo-service` in the config file" in result.stderr
    )
    assert "rules[0].actions[2].connection.prefix: required key is missing" in result.stderr
    bad = extra + "integrations:\n  echo-servise: {prefix: x}\n"
    result = invoke("check", cwd=project(tmp_path, RULES, extra=bad))
    assert (
        "integrations.echo-servise: no installed plugin provides 'echo-servise'; "
        "did you mean 'echo-service'?" in result.stderr
    )


def test_hook_hookwise_startup(server: Served):
    assert (server.root / "started.txt").read_text() == "127.0.0.1:0"


def test_hook_hookwise_shutdown(tmp_path: Path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "example.py").write_text(PLUGIN)
    extra = "  plain:\n    kind: plain\n    token: t\nplugins_dir: plugins/\n"
    extra += "integrations:\n  echo-service: {prefix: ''}\n"
    instance = Served(tmp_path, RULES, extra=extra).start()
    assert not (tmp_path / "stopped.txt").exists()
    instance.stop()
    assert (tmp_path / "stopped.txt").read_text() == "bye"


def test_hook_hookwise_invoke_action(server: Served):
    # The plugin's wrapper sees every action, its own and the built-in ones, in order.
    event_id = post_plain(server, "d-5", n=1).json()["event_id"]
    server.wait_for_runs(event_id, {"succeeded"})
    traced = [json.loads(line) for line in (server.root / "traced.jsonl").read_text().splitlines()]
    mine = [t for t in traced if t["rule"] == "plain-echo"][-3:]
    assert [(t["action"], t["step"]) for t in mine] == [
        ("echo", "first"),
        ("nap", "nap#2"),
        ("echo", "loud"),
    ]
    assert mine[1]["took"] >= 0.2  # the wrapper times the action itself
    # hookwise's own metrics are such a wrapper too.
    metrics = server.get("/metrics").text
    assert 'hookwise_action_attempts_total{action="nap",status="succeeded"}' in metrics
    assert 'hookwise_action_duration_seconds_count{action="echo"}' in metrics


def test_every_hook_has_a_test():
    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)]
    hooks = [name for name in hooks if name.startswith("hookwise_")]
    assert len(hooks) == 7
    module = sys.modules[__name__]
    missing = [name for name in hooks if not hasattr(module, f"test_hook_{name}")]
    assert missing == []


def _project(tmp_path: Path, plugin: str) -> Path:
    (tmp_path / "plugins").mkdir(parents=True)
    (tmp_path / "plugins" / "bad.py").write_text(plugin)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules: []\n")
    (tmp_path / "hookwise.yaml").write_text("plugins_dir: plugins/\n")
    return tmp_path


def test_misspelled_hook_fails_loudly(tmp_path: Path):
    plugin = (
        "from hookwise.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef hookwise_action():\n    return []\n"
    )
    result = invoke("check", cwd=_project(tmp_path, plugin))
    assert result.returncode == 1
    assert "hookwise_action" in result.stderr
    assert "unknown hook" in result.stderr


def test_plugin_that_fails_to_import_names_file_and_line(tmp_path: Path):
    plugin = "x = 1\nraise RuntimeError('boom')\n"
    result = invoke("check", cwd=_project(tmp_path, plugin))
    assert result.returncode == 1
    assert (
        "plugins/bad.py:2:1: [error] plugin failed to load: RuntimeError('boom')" in result.stderr
    )


def test_two_plugins_with_one_action_name_is_an_error(tmp_path: Path):
    plugin = (
        "from pydantic import BaseModel\nfrom hookwise.actions import ActionSpec\n"
        "from hookwise.hookspecs import hookimpl\n\nclass P(BaseModel):\n    message: str\n\n"
        "@hookimpl\ndef hookwise_actions():\n    return [ActionSpec('log', P, lambda p, c: None)]\n"
    )
    result = invoke("check", cwd=_project(tmp_path, plugin))
    assert result.returncode == 1
    assert "action 'log' is provided by both hookwise.builtin.log_action and bad" in result.stderr
    blocked = invoke(
        "plugins",
        "--json",
        cwd=tmp_path,
        env={"HOOKWISE_BLOCK_PLUGINS": "hookwise.builtin.log_action"},
    )
    assert blocked.returncode == 0, blocked.stderr
    assert "hookwise.builtin.log_action" not in json.loads(blocked.stdout)["plugins"]


def test_entry_point_plugins_are_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # An installed distribution advertising `hookwise` entry points, as pip would leave it.
    site = tmp_path / "site"
    dist = site / "hookwise_shout-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hookwise-shout\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hookwise]\nshout = hookwise_shout\n")
    (site / "hookwise_shout.py").write_text(
        "from hookwise.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef hookwise_prepare_jinja(env):\n    env.filters['shout'] = str.upper\n"
    )
    root = _project(tmp_path / "project", "")
    (root / "rules" / "r.yaml").write_text(
        "rules:\n  - name: r\n    when: {}\n    actions:\n      - uses: log\n"
        "        with: {message: \"{{ 'hi' | shout }}\"}\n"
    )
    with monkeypatch.context() as installed:
        installed.syspath_prepend(str(site))
        result = invoke("plugins", "--json", cwd=root)
        assert "shout" in json.loads(result.stdout)["plugins"]
        checked = invoke("check", cwd=root)
        assert checked.returncode == 0, checked.stderr
    without = invoke("check", cwd=root)
    assert "No filter named 'shout'" in without.stderr
