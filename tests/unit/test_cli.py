"""The `hookwise` command line: check, test (dry run), events, show, replay, plugins, schema,
db prune."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from hookwise.store import open_store
from tests.cli import invoke
from tests.conftest import FIXTURES, SECRET, project
from tests.history import DAY, Clock, finished
from tests.served import Served

THREE_MISTAKES = """\
rules:
  - name: deploy
    when:
      source: artifactory
      evnt_type: promoted
    actions:
      - uses: http.psot
        with: {url: "http://127.0.0.1:9000"}
  - name: notify
    when:
      domain: docker
      if: "data.size >"
    actions:
      - uses: log
        with: {message: "hi"}
"""

GOOD_RULES = """\
rules:
  - name: deploy-helloworld
    when:
      source: artifactory
      domain: docker
      event_type: promoted
      match:
        data.image_name: helloworld
        data.repo_key: [docker-local-staging, "qa-*"]
      exclude:
        data.tag: "*-SNAPSHOT"
    actions:
      - id: notify
        uses: http.post
        with:
          url: "http://127.0.0.1:9000/deployed"
          json: {image: "{{ data.image_name }}:{{ data.tag }}"}
          headers: {Authorization: "Bearer ${DEPLOY_TOKEN}"}
      - uses: log
        with: {message: "posted, status {{ steps.notify.output.status }}"}
  - name: only-builds
    when: {domain: build}
    actions:
      - uses: log
        with: {message: "build"}
"""


def test_check_reports_three_mistakes_with_their_lines(tmp_path: Path):
    root = project(tmp_path, THREE_MISTAKES)
    result = invoke("check", cwd=root)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        "rules/main.yaml:5:7: [error] rules[0].when.evnt_type: unknown key 'evnt_type'; "
        "did you mean 'event_type'?",
        "rules/main.yaml:7:15: [error] rules[0].actions[0].uses: unknown action 'http.psot'; "
        "did you mean 'http.post'?",
        "rules/main.yaml:12:11: [error] rules[1].when.if: template does not compile: "
        "unexpected 'end of template'",
    ]
    assert lines[3] == "3 problems found; nothing was started."


APPROVALS = """\
rules:
  - name: deploy-prod
    when: {domain: docker}
    approval: {channel: C0DEPLOYS, approvers: [U0ALICE]}
    actions: [{uses: log, with: {message: go}}]
  - name: deploy-staging
    when: {domain: docker}
    approval: {channel: C0DEPLOYS, approvers: [U0ALICE]}
    actions: [{uses: log, with: {message: go}}]
"""


def test_check_warns_when_approvals_cannot_be_clicked_without_a_signing_secret(tmp_path: Path):
    slack = "integrations:\n  slack:\n    token: xoxb-1-abc\n"
    root = project(tmp_path, APPROVALS, extra=slack)
    result = invoke("check", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 2 rules")
    assert result.stderr.splitlines() == [
        "rules/main.yaml:2: [warning] rule deploy-prod (and 1 more) asks for approval, but "
        "integrations.slack.signing_secret is not set, so Slack's buttons are refused: set it, "
        "or decide with `hookwise approve`, the API or the console"
    ]

    project(
        tmp_path, APPROVALS, extra=slack + "    signing_secret: 8f14e45fceea167a5a36dedd4bea2543\n"
    )
    assert invoke("check", cwd=root).stderr == ""


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            "rules:\n  - name: a\n    name: b\n    when: {}\n    actions: [{uses: log}]\n",
            "rules/main.yaml:3:5: [error] rules[0].name: duplicate key 'name' (first defined on "
            "line 2); remove one of them",
        ),
        (
            "rules:\n  - name: a\n    when: {source: '[abc'}\n    actions: [{uses: log, with: "
            "{message: x}}]\n",
            "rules/main.yaml:3:20: [error] rules[0].when.source: invalid glob '[abc': '[' at "
            "position 0 is never closed",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: log\n        with: "
            "{mesage: x}\n",
            "rules/main.yaml:6:16: [error] rules[0].actions[0].with.mesage: unknown key 'mesage'; "
            "did you mean 'message'?",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: http.post\n"
            "        with: {url: 'ftp://x', timeout: 'soon'}\n",
            "rules/main.yaml:6:21: [error] rules[0].actions[0].with.url: url must start with "
            "http:// or https://, got 'ftp://x'",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: log\n"
            "        with: {message: '{{ data.x '}\n",
            "rules/main.yaml:6:25: [error] rules[0].actions[0].with.message: template does not "
            "compile: unexpected end of template, expected 'end of print statement'.",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions: []\n",
            "rules/main.yaml:4:14: [error] rules[0].actions: List should have at least 1 item "
            "after validation, not 0",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions: [{uses: log, with: {message: x}}]\n"
            "  - name: a\n    when: {}\n    actions: [{uses: log, with: {message: y}}]\n",
            "rules/main.yaml:5:11: [error] rules[1].name: rule name 'a' is already used at "
            "rules/main.yaml:2; names must be unique across all files",
        ),
        (
            "rules:\n  - name: a\n    when: {if: \"'${HOME}' == 'x'\"}\n"
            "    actions: [{uses: log, with: {message: x}}]\n",
            "rules/main.yaml:3:16: [error] rules[0].when.if: ${VAR} is not expanded in "
            "conditions; match on event fields instead",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: log\n"
            "        retry: {backoff: .nan}\n        with: {message: x}\n",
            "rules/main.yaml:6:26: [error] rules[0].actions[0].retry.backoff: a duration must be "
            "a finite number of seconds >= 0, got nan",
        ),
        (
            "base: &b [*b]\nrules: []\n",
            "rules/main.yaml:1:7: [error] base[0]: an alias refers to itself",
        ),
        (
            "rules:\n  - name: a\n    when: {}\n   actions: []\n",
            "rules/main.yaml:4:4: [error] YAML syntax error: expected <block end>, but found "
            "'<block mapping start>'",
        ),
        (
            "rules:\n  - name: a\n    when: {domain: docker}\n    actions:\n"
            "      - uses: docker.redeploy\n        with: {container: web, image: 'web:1', "
            "ports: {8080: abc}}\n",
            "rules/main.yaml:6:55: [error] rules[0].actions[0].with.ports: host port 'abc' for "
            "8080 is not like 18080 or 127.0.0.1:18080",
        ),
        (
            "rules:\n  - name: a\n    when:\n      event_type:\n        - pushed\n"
            "        - {bad: 1}\n    actions: [{uses: log}]\n",
            "rules/main.yaml:6:11: [error] rules[0].when.event_type[1]: expected a glob (text), "
            "got {'bad': 1}",
        ),
        (
            "rules:\n  - name: a\n    when: {domain: docker}\n    actions:\n"
            "      - uses: docker.redeploy\n        with:\n          container: web\n"
            "          image: 'web:{{ data.tag }}'\n          stable_for: 90s\n"
            "          timeout: 60s\n",
            "rules/main.yaml:7:11: [error] rules[0].actions[0].with: stable_for must be shorter "
            "than timeout, or every redeploy times out",
        ),
        (
            "rules:\n  - name: a\n    when: {source: artifactroy}\n    actions: [{uses: log}]\n",
            "rules/main.yaml:3:20: [error] rules[0].when.source: no source 'artifactroy' is "
            "configured; did you mean 'artifactory'?",
        ),
        (
            "rules:\n  - name: a\n    when:\n      source: [artifactory, harbr]\n"
            "    actions: [{uses: log}]\n",
            "rules/main.yaml:4:29: [error] rules[0].when.source[1]: no source 'harbr' is "
            "configured; configured sources: artifactory",
        ),
        (
            "rules:\n  - name: a\n    when: {domain: docker}\n    actions:\n"
            "      - uses: lgo\n        with: {message: '{{ data.x '}\n",
            "rules/main.yaml:6:25: [error] rules[0].actions[0].with.message: template does not "
            "compile: unexpected end of template, expected 'end of print statement'.",
        ),
        (
            "rules:\n  - name: a\n    when:\n      exclude: {data.tag: *-SNAPSHOT}\n"
            "    actions: [{uses: log}]\n",
            "rules/main.yaml:4:27: [error] YAML syntax error: found undefined alias '-SNAPSHOT'; "
            'a value starting with * must be quoted, e.g. "*-SNAPSHOT"',
        ),
    ],
)
def test_check_positions_each_kind_of_mistake(tmp_path: Path, rules: str, expected: str):
    root = project(tmp_path, rules)
    result = invoke("check", cwd=root)
    assert result.returncode == 1
    assert expected in result.stderr.splitlines()


def test_a_source_kind_under_integrations_is_pointed_to_sources(tmp_path: Path):
    config = "integrations:\n  harbor: {url: 'https://harbor.example.com'}\n"
    root = project(tmp_path, "rules: []\n", config=config)
    result = invoke("check", cwd=root)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "hookwise.yaml:2:3: [error] integrations.harbor: harbor is a source kind, and sources "
        "go under `sources:` (e.g. `sources: {harbor: {kind: harbor, …}}`), not `integrations:`"
    )


def test_templated_values_are_checked_after_rendering_not_before(tmp_path: Path):
    rules = (
        "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: http.post\n"
        "        with: {url: '{{ data.url }}', timeout: '{{ data.t }}'}\n"
    )
    result = invoke("check", cwd=project(tmp_path, rules))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 1 rules, 1 sources, ")


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        (
            "listen: 127.0.0.1:8080\nmax_body_byte: 10\n",
            {},
            "hookwise.yaml:2:1: [error] max_body_byte: unknown key 'max_body_byte'; "
            "did you mean 'max_body_bytes'?",
        ),
        (
            "sources:\n  artifactory:\n    kind: artifactory\n",
            {},
            "hookwise.yaml:3:5: [error] sources.artifactory: no secret configured: set `secret: "
            "${ENV_VAR}` to the webhook's secret token, or `allow_unauthenticated: true` to "
            "accept anyone's events",
        ),
        (
            "sources:\n  artifactory:\n    kind: artifactry\n",
            {},
            "hookwise.yaml:3:11: [error] sources.artifactory.kind: unknown source kind "
            "'artifactry'; did you mean 'artifactory'?",
        ),
        (
            "sources:\n  artifactory:\n    kind: artifactory\n    secrets: x\n",
            {},
            "hookwise.yaml:4:5: [error] sources.artifactory.secrets: unknown key 'secrets'; "
            "did you mean 'secret'?",
        ),
        (
            "listen: 8080\n",
            {},
            "hookwise.yaml:1:9: [error] listen: expected host:port such as 127.0.0.1:8080, "
            "got '8080'",
        ),
        (
            "retention:\n  max_age: 30 days\n",
            {},
            "hookwise.yaml:2:12: [error] retention.max_age: expected a duration such as 30s, "
            "10m, 2h or 1d, got '30 days'",
        ),
        (
            "retention:\n  maxage: 30d\n",
            {},
            "hookwise.yaml:2:3: [error] retention.maxage: unknown key 'maxage'; "
            "did you mean 'max_age'?",
        ),
        (
            "retention:\n  max_age: 30d\n  interval: 0\n",
            {},
            "hookwise.yaml:3:13: [error] retention.interval: Input should be greater than 0",
        ),
    ],
)
def test_config_errors_name_file_line_and_fix(tmp_path: Path, config, env, expected):
    root = project(tmp_path, "rules: []\n", config=config)
    result = invoke("check", cwd=root, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == expected


UNSET = """\
store: sqlite:///./hookwise.db
sources:
  artifactory:
    kind: artifactory
    secret: ${HW_MISSING_SECRET}
integrations:
  slack:
    token: ${HW_MISSING_SLACK_TOKEN}
"""


def test_commands_that_do_not_use_a_secret_do_not_need_it(tmp_path: Path):
    root = project(tmp_path, GOOD_RULES, config=UNSET)
    checked = invoke("check", cwd=root)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.splitlines() == [
        "hookwise.yaml:5:13: [warning] environment variable HW_MISSING_SECRET is not set; "
        "`serve` and `worker` need it",
        "hookwise.yaml:8:12: [warning] environment variable HW_MISSING_SLACK_TOKEN is not set; "
        "`serve` and `worker` need it",
        "rules/main.yaml:18:36: [warning] rules[0].actions[0].with.headers.Authorization: "
        "environment variable DEPLOY_TOKEN is not set; `serve` and `worker` need it",
    ]
    for command in (["events"], ["runs"], ["schema"], ["plugins"]):
        ran = invoke(*command, cwd=root)
        assert ran.returncode == 0, (command, ran.stderr)
    promoted = str(FIXTURES / "artifactory/docker.promoted.walkthrough.json")
    tested = invoke("test", "--source", "artifactory", promoted, cwd=root)
    assert tested.returncode == 0, tested.stderr
    assert tested.stderr.startswith("note: not verified: HW_MISSING_SECRET is not set")
    assert "MATCH  deploy-helloworld" in tested.stdout


def test_serve_needs_every_secret_and_the_store_is_needed_by_all(tmp_path: Path):
    from hookwise.config import load_config
    from hookwise.errors import ConfigError

    root = project(tmp_path, "rules: []\n", config=UNSET)
    with pytest.raises(ConfigError) as strict:
        load_config(root / "hookwise.yaml")
    assert str(strict.value.problems[0]).endswith(
        "hookwise.yaml:5:13: [error] environment variable HW_MISSING_SECRET is not set; "
        "export it or write ${HW_MISSING_SECRET:-default}"
    )
    from hookwise.service import build_service

    sources = "sources:\n  artifactory: {kind: artifactory, allow_unauthenticated: true}\n"
    project(tmp_path, GOOD_RULES, config="store: sqlite:///./hookwise.db\n" + sources)
    with pytest.raises(ConfigError) as rules:
        build_service(root / "hookwise.yaml")  # as `serve` builds it
    assert str(rules.value.problems[0]).endswith(
        "environment variable DEPLOY_TOKEN is not set; export it before starting hookwise"
    )
    project(tmp_path, "rules: []\n", config="store: postgresql://hw:${HW_PG_PASSWORD}@db/hw\n")
    listed = invoke("events", cwd=root)
    assert listed.returncode == 1
    assert listed.stderr.startswith(
        "hookwise.yaml:1:8: [error] store: environment variable HW_PG_PASSWORD is not set; "
    )


def test_env_default_and_expansion(tmp_path: Path):
    config = (
        "listen: ${HW_LISTEN:-127.0.0.1:9999}\nsources:\n  a:\n    kind: artifactory\n"
        "    secret: ${HW_SECRET}\n"
    )
    root = project(tmp_path, "rules: []\n", config=config)
    assert invoke("check", cwd=root, env={"HW_SECRET": "x"}).returncode == 0


def test_dry_run_explains_every_rule(tmp_path: Path):
    root = project(tmp_path, GOOD_RULES)
    fixture = FIXTURES / "artifactory" / "docker.promoted.walkthrough.json"
    result = invoke(
        "test",
        "--source",
        "artifactory",
        str(fixture),
        "--header",
        f"X-JFrog-Event-Auth:{SECRET}",
        "--json",
        cwd=root,
        env={"DEPLOY_TOKEN": "very-secret"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [item] = report["events"]
    assert item["event"]["domain"] == "docker"
    deploy, builds = item["rules"]
    assert deploy["matched"] is True
    assert deploy["origin"] == "rules/main.yaml:2"
    notify, log = deploy["actions"]
    assert notify["params"] == {
        "url": "http://127.0.0.1:9000/deployed",
        "json": {"image": "helloworld:latest"},
        "headers": {"Authorization": "Bearer ${DEPLOY_TOKEN}"},
    }
    assert log["params"] == {"message": "posted, status <output of step notify.status>"}
    assert builds == {
        "rule": "only-builds",
        "origin": "rules/main.yaml:21",
        "matched": False,
        "reason": "domain 'docker' does not match 'build'",
    }
    assert "very-secret" not in result.stdout


def test_dry_run_human_output_says_why_not(tmp_path: Path):
    root = project(tmp_path, GOOD_RULES)
    event = tmp_path / "snapshot.json"
    event.write_text(
        json.dumps(
            {
                "domain": "docker",
                "event_type": "promoted",
                "data": {"image_name": "helloworld", "repo_key": "prod", "tag": "1-SNAPSHOT"},
            }
        )
    )
    result = invoke(
        "test",
        "--source",
        "artifactory",
        str(event),
        "--header",
        f"x-jfrog-event-auth:{SECRET}",
        cwd=root,
        env={"DEPLOY_TOKEN": "x"},
    )
    assert result.returncode == 0, result.stderr
    assert (
        "match data.repo_key: 'prod' does not match any of ['docker-local-staging', 'qa-*']"
        in result.stdout
    )


def test_dry_run_refuses_bad_auth_like_the_server(tmp_path: Path):
    root = project(tmp_path, GOOD_RULES)
    fixture = FIXTURES / "artifactory" / "docker.promoted.walkthrough.json"
    result = invoke(
        "test", "--source", "artifactory", str(fixture), cwd=root, env={"DEPLOY_TOKEN": "x"}
    )
    assert result.returncode == 1
    assert "refused (unauthorized): missing X-JFrog-Event-Auth header" in result.stderr


def test_events_show_and_replay_from_the_cli(served_factory):
    server: Served = served_factory(
        "rules:\n  - name: hello\n    when: {domain: docker}\n    actions:\n"
        "      - uses: log\n        with: {message: 'hello {{ data.tag }}'}\n"
    ).start()
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": {"tag": "cli"}})
    event_id = server.post(body.encode()).json()["event_id"]
    server.wait_for_runs(event_id, {"succeeded"})

    listed = invoke("events", "--config", str(server.config), "--json", cwd=server.root)
    assert [e["id"] for e in json.loads(listed.stdout)["events"]] == [event_id]
    human = invoke("events", "--config", str(server.config), cwd=server.root)
    assert f"{event_id}" in human.stdout
    assert "artifactory/docker/pushed  succeeded  runs=1" in human.stdout

    shown = invoke("show", event_id, "--config", str(server.config), cwd=server.root)
    assert "rule=hello  succeeded  attempts=1" in shown.stdout
    assert "log [info] hello cli" in shown.stdout

    replayed = invoke("replay", event_id, "--config", str(server.config), cwd=server.root)
    assert replayed.returncode == 0
    assert replayed.stdout.startswith(f"replayed {event_id}: 1 new runs ")
    runs = server.wait_for_runs(event_id, {"succeeded"})
    assert len(runs) == 2

    missing = invoke("show", "NOPE", "--config", str(server.config), cwd=server.root)
    assert missing.returncode == 1
    assert missing.stderr == "error: no event or run id begins with NOPE\n"


def test_plugins_lists_actions_and_sources_with_schemas(tmp_path: Path):
    root = project(tmp_path, "rules: []\n")
    result = invoke("plugins", "--json", cwd=root)
    report = json.loads(result.stdout)
    assert {"log", "http.post"} <= set(report["actions"])
    assert report["actions"]["http.post"]["params"]["required"] == ["url"]
    assert "json" in report["actions"]["http.post"]["params"]["properties"]
    assert set(report["sources"]) == {
        "artifactory",
        "harbor",
        "cloudevents",
        "standard-webhooks",
        "generic",
    }
    assert "hookwise.builtin.artifactory" in report["plugins"]


def test_schema_describes_rules_and_action_params(tmp_path: Path):
    result = invoke("schema", cwd=project(tmp_path, "rules: []\n"))
    schema = json.loads(result.stdout)
    call = schema["$defs"]["ActionCall"]
    enum = call["properties"]["uses"]["enum"]
    assert {"http.post", "log"} <= set(enum)
    assert enum == sorted(enum)
    branch = next(b for b in call["allOf"] if b["if"]["properties"]["uses"]["const"] == "log")
    assert "message" in branch["then"]["properties"]["with"]["properties"]
    assert set(schema["$defs"]["When"]["properties"]) == {
        "source",
        "domain",
        "event_type",
        "match",
        "exclude",
        "if",
    }


def test_misspelt_parameter_is_caught_even_when_its_value_is_a_template(tmp_path: Path):
    rules = (
        "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: log\n"
        "        with: {message: x, levle: \"{{ 'warning' }}\"}\n"
    )
    result = invoke("check", cwd=project(tmp_path, rules))
    assert result.returncode == 1
    assert "unknown key 'levle'; did you mean 'level'?" in result.stderr


def test_empty_env_default_is_accepted_in_rules(tmp_path: Path):
    rules = (
        "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: log\n"
        "        with: {message: 'token [${HW_SURELY_UNSET_VAR:-}]'}\n"
    )
    result = invoke("check", cwd=project(tmp_path, rules))
    assert result.returncode == 0, result.stderr


def test_empty_secret_is_refused(tmp_path: Path):
    config = "sources:\n  artifactory:\n    kind: artifactory\n    secret: ${HW_EMPTY:-}\n"
    result = invoke("check", cwd=project(tmp_path, "rules: []\n", config=config))
    assert result.returncode == 1
    assert "secret is empty" in result.stderr


def test_schema_accepts_the_example_rules_and_rejects_mistakes(tmp_path: Path):
    import jsonschema
    import yaml

    schema = json.loads(invoke("schema", cwd=project(tmp_path, "rules: []\n")).stdout)
    examples = Path(__file__).parents[2] / "rules" / "examples.yaml"
    jsonschema.validate(yaml.safe_load(examples.read_text()), schema)
    bad = {"rules": [{"name": "x", "when": {"evnt_type": "a"}, "actions": [{"uses": "log"}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    wrong_param = {"rules": [{"name": "x", "when": {}, "actions": [{"uses": "log", "with": {}}]}]}
    with pytest.raises(jsonschema.ValidationError, match="'message' is a required property"):
        jsonschema.validate(wrong_param, schema)


def test_merge_keys_let_explicit_keys_win(tmp_path: Path):
    rules = (
        "defaults: &notify\n  uses: log\n  with: {message: from the anchor}\n"
        "rules:\n  - name: a\n    when: {}\n    actions:\n"
        "      - <<: *notify\n        with: {message: explicit}\n"
    )
    root = project(tmp_path, rules.replace("defaults:", "x-defaults:"))
    result = invoke("check", cwd=root)
    # Unknown top-level key, but no false "duplicate key 'with'" for the merge.
    assert "duplicate key" not in result.stderr
    assert "unknown key 'x-defaults'" in result.stderr


def test_a_config_key_named_like_a_type_is_reported_not_crashed(tmp_path: Path):
    result = invoke("check", cwd=project(tmp_path, config="int: 5\n"))
    assert result.returncode == 1
    assert result.stderr.startswith("hookwise.yaml:1:1: [error] int: unknown key 'int'")


def test_db_prune_removes_old_history_and_says_what(tmp_path: Path, monkeypatch):
    root = project(tmp_path)
    now = time.time()

    async def history(patch: pytest.MonkeyPatch) -> list[str]:
        store = open_store(f"sqlite:///{root}/hookwise.db")
        await store.open()
        at = Clock(patch)
        ids = [await finished(store, at, when) for when in (now - 40 * DAY, now - DAY)]
        await store.close()
        return ids

    with monkeypatch.context() as patch:  # the command below runs on the real clock
        old, recent = asyncio.run(history(patch))
    pruned = invoke("db", "prune", cwd=root)
    assert pruned.returncode == 0, pruned.stderr
    where = re.escape(f"sqlite:///{root.resolve()}/hookwise.db")
    said = re.fullmatch(
        rf"{where}: pruned 1 event and 1 run \(1 attempt\) older than (\S+)\n", pruned.stdout
    )
    assert said, pruned.stdout
    # The default retention.max_age, 30 days, counted from when the command ran.
    cutoff = datetime.fromisoformat(said.group(1)).timestamp()
    assert now - 30 * DAY < cutoff < time.time() - 30 * DAY + 1
    listed = invoke("events", "--json", cwd=root)
    assert [event["id"] for event in json.loads(listed.stdout)["events"]] == [recent]
    assert old not in listed.stdout
    # --max-age overrides the config, but never cuts into the dedupe window (72h).
    again = invoke("db", "prune", "--max-age", "1h", cwd=root)
    assert "pruned 0 events and 0 runs (0 attempts)" in again.stdout
    bad = invoke("db", "prune", "--max-age", "soon", cwd=root)
    assert bad.returncode == 2
    assert "Invalid value for '--max-age': expected a duration such as 30s" in bad.stderr


def test_db_prune_refuses_when_retention_is_off_unless_given_an_age(tmp_path: Path):
    root = project(tmp_path, extra="retention:\n  max_age: null\n")
    refused = invoke("db", "prune", cwd=root)
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: retention.max_age is null, so hookwise keeps everything; "
        "pass --max-age to prune anyway\n"
    )
    forced = invoke("db", "prune", "--max-age", "90d", cwd=root)
    assert forced.returncode == 0, forced.stderr
    assert ": pruned 0 events and 0 runs (0 attempts) older than " in forced.stdout


def test_the_dry_run_shows_the_artifact_view_and_cuts_long_values_visibly(tmp_path: Path):
    root = project(tmp_path, GOOD_RULES)
    body = json.loads((FIXTURES / "artifactory/docker.promoted.walkthrough.json").read_text())
    body["data"]["notes"] = "x" * 1000
    (root / "event.json").write_text(json.dumps(body))
    ran = invoke("test", "--source", "artifactory", "--header", f"X-JFrog-Event-Auth:{SECRET}",
                 "event.json", cwd=root)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = {line.split()[0]: line for line in ran.stdout.splitlines() if line.strip()}
    assert lines["data"].endswith("…") and len(lines["data"]) == len("data      ") + 300
    assert '"image": "helloworld", "tag": "latest"' in lines["artifact"]


def test_a_check_across_fields_waits_for_a_templated_field_it_needs(tmp_path: Path):
    rules = (
        "rules:\n  - name: a\n    when: {domain: docker}\n    actions:\n"
        "      - uses: docker.redeploy\n        with:\n          container: web\n"
        "          image: 'web:1'\n          stable_for: 90s\n"
        "          timeout: '{{ data.timeout }}'\n"
    )
    root = project(tmp_path, rules, extra="integrations:\n  docker: {}\n")
    result = invoke("check", cwd=root)
    assert result.returncode == 0, result.stderr  # known only once the event is there


def test_an_unknown_log_level_is_refused_before_anything_starts(tmp_path: Path):
    ran = invoke("worker", cwd=tmp_path, env={"HOOKWISE_LOG_LEVEL": "loud"})
    assert ran.returncode == 2
    assert "HOOKWISE_LOG_LEVEL='loud'; use one of debug, info, warning" in ran.stderr
