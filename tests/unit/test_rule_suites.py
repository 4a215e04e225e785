"""Rule test suites (`hookwise test`): cases pass and fail as written, with file:line and a
diff, flow control over earlier deliveries and a clock, render errors, JUnit XML, a stored
event exported as a fixture, malformed test files, and the project's own suite.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from hookwise.service import build_service
from hookwise.sources import Delivery
from tests.cli import invoke
from tests.conftest import SECRET, project

RULES = """\
rules:
  - name: deploy
    when: {source: artifactory, domain: docker, event_type: pushed}
    debounce: {key: "{{ data.image_name }}", window: 5m}
    actions:
      - id: call
        uses: http.post
        with: {url: "http://127.0.0.1:9/deploy", json: {tag: "{{ data.tag }}"}}
  - name: nightly
    when: {source: artifactory, domain: build}
    throttle: {key: "{{ data.build_name }}", once_per: 1h}
    actions:
      - uses: log
        with: {message: "{{ data.missing.field }}"}
"""


def pushed(tag: str) -> str:
    data = {"repo_key": "r", "image_name": "api", "tag": tag, "path": "p", "name": "n",
            "sha256": "a", "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data})


def build() -> str:
    data = {"build_name": "web", "build_number": "1", "build_started": "2026-12-05T08:00:00Z"}
    return json.dumps({"domain": "build", "event_type": "uploaded", "data": data})


def suite(root: Path, text: str, name: str = "deploy.yaml") -> Path:
    folder = root / "rules" / "tests"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_a_passing_suite_with_flow_control_and_a_clock(tmp_path: Path):
    root = project(tmp_path, RULES)
    suite(
        root,
        f"""\
tests:
  - name: pushes within the window are one batch
    source: artifactory
    before:
      - {{body: '{pushed("1.0")}', at: "2026-12-05T08:00:00Z"}}
    body: '{pushed("1.1")}'
    at: "2026-12-05T08:03:00Z"
    expect:
      match: [deploy]
      params:
        deploy:
          call: {{json: {{tag: "1.1"}}}}
      runs:
        deploy: {{status: debouncing, batch: 2, keys: {{debounce: api}}}}
  - name: a second build within the hour is throttled
    source: artifactory
    before: [{{body: '{build()}', at: "2026-12-05T08:00:00Z"}}]
    body: '{build()}'
    at: "2026-12-05T08:30:00Z"
    expect:
      runs:
        nightly: {{status: skipped}}
      render_error:
        nightly:
          log#1: "missing"
""",
    )
    ran = invoke("test", cwd=root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines() == [
        "ok    rules/tests/deploy.yaml:2  pushes within the window are one batch",
        "ok    rules/tests/deploy.yaml:15  a second build within the hour is throttled",
        "2 passed, 0 failed",
    ]


def test_a_failing_case_says_where_and_shows_a_diff_and_junit_says_so_too(tmp_path: Path):
    root = project(tmp_path, RULES)
    suite(
        root,
        f"""\
tests:
  - name: the tag reaches the deploy
    source: artifactory
    body: '{pushed("2.0")}'
    expect:
      no_match: [deploy]
      miss: {{nightly: "event_type"}}
      params:
        deploy:
          call: {{json: {{tag: "2.1"}}}}
""",
    )
    report = tmp_path / "junit.xml"
    ran = invoke("test", "--junit", str(report), cwd=root)
    assert ran.returncode == 1
    assert ran.stdout.splitlines() == [
        "FAIL  rules/tests/deploy.yaml:2  the tag reaches the deploy",
        "      rule deploy: expected not to match, but it matched",
        "      rule nightly: expected to miss because of 'event_type', but the reason is: "
        "domain 'docker' does not match 'build'",
        "      rule deploy, call: parameters differ",
        "          --- expected",
        "          +++ rendered",
        "          @@ -1,5 +1,5 @@",
        "           {",
        '             "json": {',
        '          -    "tag": "2.1"',
        '          +    "tag": "2.0"',
        "             }",
        "           }",
        "0 passed, 1 failed",
    ]
    [case] = ElementTree.parse(report).getroot().iter("testcase")
    assert (case.get("name"), case.get("line")) == ("the tag reaches the deploy", "2")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "rule deploy: expected not to match, but it matched"


def test_a_stored_event_becomes_a_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = project(tmp_path, RULES)
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)

    async def received() -> str:
        service = build_service(root / "hookwise.yaml")
        await service.open()
        try:
            delivery = Delivery({"x-jfrog-event-auth": SECRET}, pushed("3.0").encode())
            [result] = await service.receive("artifactory", delivery)
            return result.event_id
        finally:
            await service.close()

    event_id = asyncio.run(received())
    folder = root / "rules" / "tests"
    folder.mkdir(parents=True)
    exported = invoke("events", "export", event_id[:10], "-o", str(folder / "pushed.json"),
                      cwd=root)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    fixture = json.loads((folder / "pushed.json").read_text())
    assert fixture["exported_from"] == event_id and fixture["data"]["tag"] == "3.0"
    assert "x-jfrog-event-auth" not in fixture["headers"] and "id" not in fixture
    suite(
        root,
        """\
tests:
  - name: the delivery of that day
    source: artifactory
    stored: pushed.json
    expect:
      params: {deploy: {call: {json: {tag: "3.0"}}}}
""",
    )
    ran = invoke("test", cwd=root)
    assert ran.returncode == 0, ran.stdout


def test_a_malformed_test_file_is_reported_where_it_is_wrong(tmp_path: Path):
    root = project(tmp_path, RULES)
    suite(
        root,
        """\
tests:
  - name: a typo
    source: artifactory
    body: "{}"
    expect: {matches: [deploy]}
""",
    )
    suite(
        root,
        """\
tests:
  - name: two bodies
    source: artifactory
    body: "{}"
    event: event.json
    expect: {match: [deploy]}
""",
        name="second.yaml",
    )
    ran = invoke("test", cwd=root)
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        "rules/tests/deploy.yaml:5:14: [error] tests[0].expect.matches: unknown key 'matches'; "
        "did you mean 'match'?",
        "rules/tests/second.yaml:2:5: [error] tests[0]: give the event one way: `event: "
        "<fixture file>`, `body:` inline, or `stored: <file from hookwise events export>`",
    ]


def test_test_files_are_not_read_as_rules(tmp_path: Path):
    root = project(tmp_path, RULES)
    suite(root, "tests: []\n")
    assert invoke("check", cwd=root).returncode == 0


def test_the_projects_own_example_rules_pass_their_suite():
    here = Path(__file__).resolve().parents[2]
    ran = invoke("test", cwd=here)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[-1].endswith(" passed, 0 failed")


GITOPS = """\
rules:
  - name: bump
    when: {source: artifactory, domain: docker, event_type: pushed}
    actions:
      - id: commit
        uses: git.commit
        with:
          repository: https://git.example.com/deploy.git
          edits:
            - file: values.yaml
              yaml_path: image.tag
              value: "{{ data.tag }}"
              policy: {semver: minor}
"""


def test_a_case_shows_the_verdict_of_a_version_policy_against_a_current_value(tmp_path: Path):
    root = project(tmp_path, GITOPS, extra="integrations:\n  git: {}\n")
    suite(
        root,
        f"""\
tests:
  - name: a newer minor is committed
    source: artifactory
    body: '{pushed("1.6.0")}'
    expect:
      policy: {{bump: {{commit: {{current: "1.5.2", deploys: true}}}}}}
  - name: an older tag is skipped
    source: artifactory
    body: '{pushed("1.4.0")}'
    expect:
      policy:
        bump: {{commit: {{current: "registry/api:1.5.2", deploys: false, reason: "not newer"}}}}
  - name: a wrong expectation fails saying why
    source: artifactory
    body: '{pushed("2.0.0")}'
    expect:
      policy: {{bump: {{commit: {{current: "1.5.2", deploys: true}}}}}}
""",
    )
    ran = invoke("test", cwd=root)
    assert ran.returncode == 1
    assert ran.stdout.splitlines()[:2] == [
        "ok    rules/tests/deploy.yaml:2  a newer minor is committed",
        "ok    rules/tests/deploy.yaml:7  an older tag is skipped",
    ]
    assert (
        "rule bump, commit: expected to deploy, but it is skipped: 2.0.0 is a new major "
        "version; current is 1.5.2 (policy semver: minor)"
    ) in ran.stdout
