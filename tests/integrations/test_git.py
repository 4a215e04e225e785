"""git.commit against git's own smart-HTTP server (`git http-backend`) on loopback."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookwise_git import (
    CommitParams,
    GitSettings,
    PullRequestParams,
    git_commit,
    git_pull_request,
)
from pydantic import SecretStr, ValidationError

from hookwise.actions import ActionContext, ActionSpec
from hookwise.egress import EgressPolicy
from hookwise.errors import EgressDenied, PermanentFailure, SkipRun
from hookwise.event import Event
from hookwise.plugins import load_registry
from tests.conftest import Hookwise, wait_until
from tests.gitserver import SSHD, TOKEN, GitServer, SshServer
from tests.standins.forges import ForgeStandin

DEPLOYMENT = """\
# The web front end. Image bumped by hookwise.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep in sync with the service
spec:
  template:
    spec:
      containers:
        - name: sidecar
          image: "registry.example/proxy:2.1"
        - name: app
          image: "registry.example/web:1.4.1"  # the app
          ports:
            - containerPort: 8080
"""
VALUES = "image:\n  repository: registry.example/web\n  tag: 1.4.1 # bumped by CD\n"
KUSTOMIZATION = "resources:\n- deployment.yaml\nimages:\n- name: web\n  newTag: 1.4.1\n"
FILES = {
    "apps/web/deployment.yaml": DEPLOYMENT,
    "apps/web/values.yaml": VALUES,
    "apps/web/kustomization.yaml": KUSTOMIZATION,
    "VERSION": "web=1.4.1\n",
}
IMAGE_EDIT = {
    "file": "apps/web/deployment.yaml",
    "yaml_path": "spec.template.spec.containers[name=app].image",
    "value": "registry.example/web:1.5.0",
}
pytestmark = pytest.mark.slow


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "repos")
    server.root.mkdir()
    server.create("deploy", FILES)
    yield server
    server.close()


def context(key: str = "k" * 32, allow: tuple[str, ...] = ("127.0.0.1",), token: str = TOKEN):
    event = Event("01EVENT", "artifactory", "artifactory", "docker", "promoted", None,
                  time.time(), {}, {})  # fmt: skip
    settings = GitSettings(token=SecretStr(token), author_name="CD Bot", author_email="cd@test")
    return ActionContext(event, "bump-web", "bump", 1, key, EgressPolicy(allow), settings=settings)


def params(git: GitServer, *edits: dict, **extra) -> CommitParams:
    return CommitParams.model_validate(
        {"repository": f"{git.url}/deploy.git", "edits": list(edits or [IMAGE_EDIT]),
         "message": "Deploy web 1.5.0", **extra}
    )  # fmt: skip


def test_the_action_is_registered_with_its_integration():
    registry = load_registry()
    spec: ActionSpec = registry.actions["git.commit"]
    assert spec.params is CommitParams and spec.integration == "git"
    assert registry.integrations["git"].settings is GitSettings


def test_a_commit_changes_only_the_value_and_names_the_event_and_run(git: GitServer):
    output = git_commit(params(git), context())
    assert output["changed"] and output["attempts"] == 1 and not output["already_committed"]
    assert output["edited"] == [
        "apps/web/deployment.yaml: spec.template.spec.containers[name=app].image"
    ]
    # Comments, quoting, order and layout stay: the one value changed.
    assert git.show("deploy", "apps/web/deployment.yaml") == DEPLOYMENT.replace(
        "registry.example/web:1.4.1", "registry.example/web:1.5.0"
    )
    assert git.commits("deploy") == ["Deploy web 1.5.0", "seed"]
    message = git.message("deploy")
    assert "Hookwise-Event: 01EVENT" in message and f"Hookwise-Run: {'k' * 32}" in message
    head = git.message("deploy", "main").strip()
    assert head.startswith("Deploy web 1.5.0")
    author = git.log_format("deploy", "%an <%ae>")
    assert author == "CD Bot <cd@test>"
    assert output["sha"] == git.log_format("deploy", "%H")


def test_helm_values_kustomize_images_and_regex_in_one_commit(git: GitServer):
    edits = (
        {"file": "apps/web/values.yaml", "yaml_path": "image.tag", "value": "1.5.0"},
        {"file": "apps/web/kustomization.yaml", "kustomize_image": "web", "value": "1.5.0"},
        {"file": "VERSION", "regex": r"^web=(\S+)$", "value": "1.5.0"},
    )
    output = git_commit(params(git, *edits), context())
    assert len(output["edited"]) == 3
    assert git.show("deploy", "apps/web/values.yaml") == VALUES.replace("1.4.1", "1.5.0")
    assert git.show("deploy", "apps/web/kustomization.yaml") == KUSTOMIZATION.replace(
        "1.4.1", "1.5.0"
    )
    assert git.show("deploy", "VERSION") == "web=1.5.0\n"
    digest = "sha256:" + "ab" * 32
    edit = {"file": "apps/web/kustomization.yaml", "kustomize_image": "web", "value": digest}
    git_commit(params(git, edit), context(key="d" * 32))
    assert f"  digest: {digest}\n" in git.show("deploy", "apps/web/kustomization.yaml")


def test_a_value_already_in_place_commits_nothing(git: GitServer):
    git_commit(params(git), context(key="a" * 32))
    again = git_commit(params(git), context(key="b" * 32))
    assert again["changed"] is False and again["already_committed"] is False
    assert git.commits("deploy") == ["Deploy web 1.5.0", "seed"]
    assert again["sha"] == git.log_format("deploy", "%H")


def test_a_retry_after_a_crash_between_push_and_record_makes_no_second_commit(git: GitServer):
    """The first attempt pushed, then its process died before hookwise recorded it: the
    retry (same run, same idempotency key) finds its commit by the run's trailer, even
    though another commit has landed on top since."""
    first = git_commit(params(git), context(key="r" * 32))
    git.commit_directly("deploy", "VERSION", "web=9.9.9\n")
    retried = git_commit(params(git), context(key="r" * 32))
    assert retried["already_committed"] is True and retried["changed"] is False
    assert retried["sha"] == first["sha"]
    assert git.commits("deploy") == ["other: VERSION", "Deploy web 1.5.0", "seed"]


def test_a_push_race_is_won_by_fetching_and_reapplying(git: GitServer):
    git.before_push = lambda: git.commit_directly("deploy", "VERSION", "web=1.4.2\n")
    output = git_commit(params(git), context())
    assert output["changed"] and output["attempts"] == 2
    assert git.commits("deploy") == ["Deploy web 1.5.0", "other: VERSION", "seed"]
    assert git.show("deploy", "VERSION") == "web=1.4.2\n"
    assert "registry.example/web:1.5.0" in git.show("deploy", "apps/web/deployment.yaml")


def test_refused_credentials_fail_for_good_without_showing_the_token(git: GitServer):
    with pytest.raises(PermanentFailure) as caught:
        git_commit(params(git), context(token="wrong-token-value"))
    assert "refused the credentials" in str(caught.value)
    assert "integrations.git.token" in str(caught.value)
    assert "wrong-token-value" not in str(caught.value)
    assert git.commits("deploy") == ["seed"]


def test_a_protected_branch_refuses_the_push_and_says_so(git: GitServer):
    git.protect("deploy", "main")
    with pytest.raises(PermanentFailure) as caught:
        git_commit(params(git), context())
    message = str(caught.value)
    assert "refused the push" in message and "main is a protected branch" in message
    assert "git.pull_request" in message
    assert git.commits("deploy") == ["seed"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({**IMAGE_EDIT, "yaml_path": "spec.template.spec.containers[name=api].image"},
         "no item with name=api at spec.template.spec.containers; there are: sidecar, app"),
        ({**IMAGE_EDIT, "yaml_path": "spec.replicas"}, "no key 'replicas' there"),
        ({**IMAGE_EDIT, "file": "apps/api/deployment.yaml"}, "no such file on the branch"),
        ({**IMAGE_EDIT, "file": "../../etc/passwd"}, "the path leaves the repository"),
        ({"file": "VERSION", "regex": "^api=(.*)$", "value": "2"}, "the regex matches nothing"),
    ],
)  # fmt: skip
def test_an_edit_that_cannot_apply_fails_naming_file_and_path(git: GitServer, edit, expected):
    with pytest.raises(PermanentFailure, match="edit ") as caught:
        git_commit(params(git, edit), context())
    assert expected in str(caught.value)
    assert git.commits("deploy") == ["seed"]


def test_the_egress_policy_applies_to_git(git: GitServer):
    with pytest.raises(EgressDenied, match=r"not in egress\.allow"):
        git_commit(params(git), context(allow=()))
    assert git.requests == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"file": "a.yaml", "value": "1"}, "give exactly one of yaml_path, kustomize_image"),
        ({"file": "a.yaml", "yaml_path": "a..b", "value": "1"}, "yaml_path 'a..b'"),
        ({"file": "a", "regex": "(", "value": "1"}, "regex '(' is invalid"),
    ],
)  # fmt: skip
def test_literal_mistakes_are_caught_when_rules_load(edit, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        CommitParams.model_validate({"repository": "https://git.example/r.git", "edits": [edit]})


GITOPS_RULES = """\
rules:
  - name: gitops-web
    when: {source: artifactory, domain: docker, event_type: promoted}
    actions:
      - id: bump
        uses: git.commit
        with:
          repository: GIT_URL/deploy.git
          message: "Deploy {{ artifact.image }}:{{ artifact.tag }}"
          edits:
            - file: apps/web/values.yaml
              yaml_path: image.tag
              value: "{{ artifact.tag }}"
"""


def gitops_server(root: Path, git: GitServer, lease: str = "30s") -> Hookwise:
    rules = GITOPS_RULES.replace("GIT_URL", git.url)
    extra = "integrations:\n  git:\n    token: ${GIT_TOKEN}\n"
    server = Hookwise(root, rules, extra=extra, lease=lease)
    server.env["GIT_TOKEN"] = TOKEN
    return server


def promotion(tag: str) -> bytes:
    data = {"image_name": "web", "tag": tag, "repo_key": "docker-prod"}
    return json.dumps({"domain": "docker", "event_type": "promoted", "data": data}).encode()


def test_a_promotion_commits_the_new_tag_through_a_real_serve(tmp_path: Path, git: GitServer):
    server = gitops_server(tmp_path / "hw", git).start()
    try:
        event_id = server.post(promotion("1.5.0")).json()["event_id"]
        [run] = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["output"]["bump"]["changed"] is True
        wait_until(lambda: git.commits("deploy")[0].startswith("Deploy web:1.5.0"))
        assert git.show("deploy", "apps/web/values.yaml") == VALUES.replace("1.4.1", "1.5.0")
        assert f"Hookwise-Event: {event_id}" in git.message("deploy")
        assert TOKEN not in json.dumps(server.event(event_id))
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("before", "path", "value", "after"),
    [
        ("a:\n  tag: 1.4.1   # pinned\n", "a.tag", "1.5.0", "a:\n  tag: 1.5.0   # pinned\n"),
        ("tag: 'v1'\n", "tag", "it's", "tag: 'it''s'\n"),
        ('tag: "v1"  # q\n', "tag", 'say "hi"', 'tag: "say \\"hi\\""  # q\n'),
        ("image: {repo: web, tag: v1}\n", "image.tag", "v2", "image: {repo: web, tag: v2}\n"),
        ("tags: [v1, v2]\n", "tags[1]", "v3", "tags: [v1, v3]\n"),
        ("enabled: x\n", "enabled", "true", 'enabled: "true"\n'),
        ("tag: x\n", "tag", "1.5", 'tag: "1.5"\n'),
        ("tag: x\r\nother: y\r\n", "tag", "z", "tag: z\r\nother: y\r\n"),
    ],
)  # fmt: skip
def test_a_yaml_value_is_replaced_where_it_stands(tmp_path: Path, before, path, value, after):
    from hookwise_git.edits import Edit, apply

    (tmp_path / "f.yaml").write_bytes(before.encode())
    assert apply(tmp_path, Edit(file="f.yaml", yaml_path=path, value=value))
    assert (tmp_path / "f.yaml").read_bytes().decode() == after


def test_a_block_scalar_is_refused_rather_than_rewritten(tmp_path: Path):
    from hookwise_git.edits import Edit, apply

    (tmp_path / "f.yaml").write_text("script: |\n  echo 1\n")
    with pytest.raises(PermanentFailure, match="block scalar"):
        apply(tmp_path, Edit(file="f.yaml", yaml_path="script", value="echo 2"))


def test_a_policy_commits_newer_tags_only_and_skips_the_rest_saying_why(git: GitServer):
    def edit(tag: str) -> dict:
        image = f"registry.example/web:{tag}"
        return {**IMAGE_EDIT, "value": image, "policy": {"semver": "minor"}}

    older = params(git, edit("1.4.0"))
    with pytest.raises(SkipRun) as caught:
        git_commit(older, context(key="o" * 32))
    assert str(caught.value) == (
        "apps/web/deployment.yaml: spec.template.spec.containers[name=app].image: "
        "1.4.0 is not newer than committed 1.4.1"
    )
    with pytest.raises(SkipRun, match=r"2\.0\.0 is a new major version; committed is 1\.4\.1"):
        git_commit(params(git, edit("2.0.0")), context(key="m" * 32))
    assert git.commits("deploy") == ["seed"]
    assert git_commit(params(git, edit("1.5.0")), context(key="n" * 32))["changed"]
    assert git.commits("deploy") == ["Deploy web 1.5.0", "seed"]


def test_serve_killed_after_its_push_landed_commits_once_after_restart(
    tmp_path: Path, git: GitServer
):
    """SIGKILL between the push reaching the server and hookwise recording it: after a
    restart the run is claimed again once its lease expires, finds its own commit by the
    run trailer, and succeeds without a second commit."""
    server = gitops_server(tmp_path / "hw", git, lease="2s").start()
    git.after_push = server.kill
    event_id = server.post(promotion("1.5.0")).json()["event_id"]
    wait_until(lambda: server.process is not None and server.process.poll() is not None)
    assert git.commits("deploy") == ["Deploy web:1.5.0", "seed"]

    server.start()
    try:
        [run] = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["output"]["bump"]["already_committed"] is True
        assert [h["status"] for h in run["history"]] == ["lost", "succeeded"]
        assert git.commits("deploy") == ["Deploy web:1.5.0", "seed"]
    finally:
        server.stop()


# -- git.pull_request ---------------------------------------------------------------------


@pytest.fixture
def forge() -> Iterator[ForgeStandin]:
    server = ForgeStandin(["team/deploy"])
    yield server
    server.close()


def proposing(git: GitServer, forge: ForgeStandin, kind: str, tag: str, key: str, **extra):
    """The params and context of one git.pull_request run for `tag`."""
    params = PullRequestParams.model_validate(
        {"repository": f"{git.url}/deploy.git", "project": "team/deploy", "forge": kind,
         "branch": "hookwise/web", "title": f"Deploy web {tag}", "body": f"web {tag}",
         "message": f"Deploy web {tag}",
         "edits": [{"file": "apps/web/values.yaml", "yaml_path": "image.tag", "value": tag}],
         **extra}
    )  # fmt: skip
    ctx = context(key=key)
    api = f"{forge.url}/github" if kind == "github" else f"{forge.url}/gitlab"
    ctx.settings = ctx.settings.model_copy(update={"api_url": api})
    return params, ctx


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_one_open_request_per_branch_opened_then_updated(git: GitServer, forge, kind):
    first = git_pull_request(*proposing(git, forge, kind, "1.5.0", "a" * 32))
    assert (first["number"], first["created"], first["updated"]) == (1, True, False)
    assert first["url"].endswith("/1")
    assert git.commits("deploy") == ["seed"], "the base branch is left alone"
    assert git.commits("deploy", "hookwise/web") == ["Deploy web 1.5.0", "seed"]
    assert "tag: 1.5.0 # bumped by CD" in git.show("deploy", "apps/web/values.yaml", "hookwise/web")

    second = git_pull_request(*proposing(git, forge, kind, "1.6.0", "b" * 32))
    assert (second["number"], second["created"], second["updated"]) == (1, False, True)
    # The branch is rebuilt on the base: one commit, the newest value.
    assert git.commits("deploy", "hookwise/web") == ["Deploy web 1.6.0", "seed"]
    [request] = forge.pulls["team/deploy"]
    assert request["title"] == "Deploy web 1.6.0"
    assert request.get("body", request.get("description")) == "web 1.6.0"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_retried_run_neither_pushes_again_nor_opens_a_second_request(git, forge, kind):
    first = git_pull_request(*proposing(git, forge, kind, "1.5.0", "r" * 32))
    pushes = [r for r in git.requests if r[1].startswith("/deploy.git/git-receive-pack")]
    again = git_pull_request(*proposing(git, forge, kind, "1.5.0", "r" * 32))
    assert again["sha"] == first["sha"] and again["number"] == first["number"] == 1
    assert [r for r in git.requests if r[1].startswith("/deploy.git/git-receive-pack")] == pushes
    assert len(forge.pulls["team/deploy"]) == 1


def test_auto_merge_merges_and_nothing_to_change_opens_nothing(git: GitServer, forge):
    merged = git_pull_request(*proposing(git, forge, "gitlab", "1.5.0", "m" * 32, auto_merge=True))
    assert merged["merged"] is True
    assert forge.pulls["team/deploy"][0]["state"] == "merged"
    unchanged = git_pull_request(*proposing(git, forge, "github", "1.4.1", "n" * 32))
    assert unchanged["changed"] is False and unchanged["number"] is None
    assert forge.pulls["team/deploy"][1:] == []


def test_a_forge_that_refuses_the_token_fails_for_good_saying_so(git: GitServer, forge):
    params, ctx = proposing(git, forge, "github", "1.5.0", "t" * 32, project="team/other")
    with pytest.raises(PermanentFailure, match="GitHub team/other: 404"):
        git_pull_request(params, ctx)


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_both_forge_clients_go_through_the_egress_guard(git: GitServer, kind):
    """The repository (127.0.0.1) is allowed, the forge (127.0.0.2) is not."""
    elsewhere = ForgeStandin(["team/deploy"], host="127.0.0.2")
    try:
        with pytest.raises(EgressDenied):
            git_pull_request(*proposing(git, elsewhere, kind, "1.5.0", "e" * 32))
        assert elsewhere.requests == []
    finally:
        elsewhere.close()


def test_a_promotion_opens_a_pull_request_through_a_real_serve(
    tmp_path: Path, git: GitServer, forge: ForgeStandin
):
    rules = f"""\
rules:
  - name: propose-web
    when: {{source: artifactory, domain: docker, event_type: promoted}}
    actions:
      - id: propose
        uses: git.pull_request
        with:
          forge: github
          repository: {git.url}/deploy.git
          project: team/deploy
          branch: "hookwise/{{{{ artifact.image }}}}"
          title: "Deploy {{{{ artifact.image }}}}:{{{{ artifact.tag }}}}"
          edits:
            - {{file: apps/web/values.yaml, yaml_path: image.tag, value: "{{{{ artifact.tag }}}}"}}
"""
    extra = f"integrations:\n  git:\n    token: ${{GIT_TOKEN}}\n    api_url: {forge.url}/github\n"
    server = Hookwise(tmp_path / "hw", rules, extra=extra)
    server.env["GIT_TOKEN"] = TOKEN
    server.start()
    try:
        event_id = server.post(promotion("1.5.0")).json()["event_id"]
        [run] = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["output"]["propose"]["created"] is True
        [pull] = forge.pulls["team/deploy"]
        assert (pull["title"], pull["head"]["ref"]) == ("Deploy web:1.5.0", "hookwise/web")
        values = git.show("deploy", "apps/web/values.yaml", "hookwise/web")
        assert values == VALUES.replace("1.4.1", "1.5.0")
        assert git.commits("deploy") == ["seed"]
    finally:
        server.stop()


# -- over SSH ---------------------------------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    if os.getuid() != 0 or not Path(SSHD).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the SSH tests: run as root with openssh-server installed")
        pytest.skip("needs root and openssh-server (.ci/run installs it) to start sshd")
    server = SshServer(tmp_path / "sshd")
    yield server
    server.close()


def ssh_context(sshd: SshServer, key: Path | None = None, known: Path | None = None):
    made = context()
    made.settings = made.settings.model_copy(
        update={"token": None, "ssh_key_file": str(key or sshd.key),
                "known_hosts_file": str(known or sshd.known_hosts)}
    )  # fmt: skip
    return made


def test_a_commit_over_ssh_with_the_configured_key(git: GitServer, sshd: SshServer):
    url = sshd.url(git.root / "deploy.git")
    output = git_commit(params(git, repository=url), ssh_context(sshd))
    assert output["changed"] and git.commits("deploy") == ["Deploy web 1.5.0", "seed"]
    assert git.requests == [], "nothing went over HTTP"


def test_ssh_refuses_a_wrong_key_and_an_unknown_host_key_for_good(
    git: GitServer, sshd: SshServer, tmp_path: Path
):
    url = sshd.url(git.root / "deploy.git")
    with pytest.raises(PermanentFailure, match="the server refused the SSH key"):
        git_commit(params(git, repository=url), ssh_context(sshd, key=sshd.stranger))
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(PermanentFailure, match="host key is not the one in"):
        git_commit(params(git, repository=url), ssh_context(sshd, known=empty))
    with pytest.raises(EgressDenied):
        made = ssh_context(sshd)
        made.egress = EgressPolicy()
        git_commit(params(git, repository=url), made)
    assert git.commits("deploy") == ["seed"]
