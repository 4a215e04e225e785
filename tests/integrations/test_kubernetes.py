"""kubernetes.rollout against a local apps/v1 stand-in, through the official client over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hookwise_kubernetes
import pytest
from pydantic import ValidationError

from hookwise.actions import ActionContext, ActionSpec, RunLog
from hookwise.egress import EgressPolicy
from hookwise.errors import EgressDenied, PermanentFailure, RedirectRefused, RetryLater, SkipRun
from hookwise.event import Event
from hookwise.plugins import load_registry
from tests.conftest import FIXTURES, project, run_cli
from tests.integrations.kube_standin import (
    ADMIN_TOKEN,
    READER_TOKEN,
    SMP,
    KubeStandin,
    write_kubeconfig,
)

OLD, NEW = "registry.example.com/app:1.4", "registry.example.com/app:1.5"
CAUSE = "kubernetes.io/change-cause"
# The stand-in listens on loopback, which the egress policy refuses unless allowed.
LOOPBACK_ALLOWED = EgressPolicy(["127.0.0.1"])


@pytest.fixture
def kube() -> Iterator[KubeStandin]:
    server = KubeStandin()
    server.add("Deployment", "web", {"app": OLD, "sidecar": "envoy:1.30"})
    yield server
    server.close()


@pytest.fixture(scope="module")
def spec() -> ActionSpec:
    """The action as hookwise registers it, from the installed distribution's entry point."""
    registry = load_registry()
    assert registry.integrations["kubernetes"].settings is hookwise_kubernetes.KubernetesSettings
    return registry.actions["kubernetes.rollout"]


@pytest.fixture(autouse=True)
def _not_stopping() -> Iterator[None]:
    # A service stopped by an earlier test in this process told the plugin it is stopping.
    hookwise_kubernetes._stopping.clear()
    yield
    hookwise_kubernetes._stopping.clear()


@pytest.fixture
def ctx(kube: KubeStandin, tmp_path: Path) -> ActionContext:
    return context(kube.kubeconfig(tmp_path / "kubeconfig"))


def context(kubeconfig: Path, key: str | None = None, **settings: Any) -> ActionContext:
    event = Event("E1", "artifactory", "artifactory", "docker", "pushed", None, 0.0, {}, {})
    made = ActionContext(
        event, "deploy", "rollout", 1, key or uuid.uuid4().hex, LOOPBACK_ALLOWED, RunLog("t")
    )
    values = {"kubeconfig": str(kubeconfig), "timeout": "5s", **settings}
    made.settings = hookwise_kubernetes.KubernetesSettings.model_validate(values)
    return made


def run(spec: ActionSpec, ctx: ActionContext, **params: Any) -> Any:
    values = {"name": "web", "container": "app", "image": NEW, "poll_interval": "0.01s"}
    return spec.run(spec.params.model_validate({**values, **params}), ctx)


def messages(ctx: ActionContext) -> list[str]:
    return [line["message"] for line in ctx.log.lines]


def failure(spec: ActionSpec, ctx: ActionContext, raised: type[Exception], **params: Any) -> str:
    with pytest.raises(raised) as caught:
        run(spec, ctx, **params)
    message = str(caught.value)
    assert ADMIN_TOKEN not in message and READER_TOKEN not in message
    return message


# -- rolling out ---------------------------------------------------------------------------


def test_progress_sets_the_image_and_follows_the_rollout(spec, kube, ctx):
    output = run(spec, ctx)

    assert output == {
        "kind": "Deployment",
        "namespace": "default",
        "name": "web",
        "old_image": OLD,
        "new_image": NEW,
        "revision": "2",
        "changed": True,
        "rolled_back": False,
    }
    assert kube.image("Deployment", "web", "app") == NEW
    assert kube.image("Deployment", "web", "sidecar") == "envoy:1.30"
    metadata = kube.get("Deployment", "web")["metadata"]
    assert metadata["annotations"][CAUSE] == "hookwise rule deploy, event E1"
    assert metadata["generation"] == 2
    [patch] = kube.seen("PATCH")
    assert patch.path == "/apis/apps/v1/namespaces/default/deployments/web"
    assert patch.headers["content-type"] == SMP
    assert patch.headers["authorization"] == f"Bearer {ADMIN_TOKEN}"
    assert patch.body["spec"] == {
        "template": {"spec": {"containers": [{"name": "app", "image": NEW}]}}
    }
    assert patch.body["metadata"]["resourceVersion"] == "101"  # the version it read
    assert messages(ctx) == [
        f"deployment default/web: set container app to {NEW} (was {OLD})",
        "waiting for the deployment spec update to be observed",
        "1 out of 3 new replicas have been updated",
        "1 old replicas are pending termination",
        "2 of 3 updated replicas are available",
        'deployment "web" successfully rolled out',
    ]


def test_without_wait_only_sets_the_image(spec, kube, ctx):
    output = run(spec, ctx, wait=False, change_cause="release 1.5 by the pipeline")
    assert (output["changed"], output["revision"]) == (True, "1")  # not yet observed
    assert kube.image("Deployment", "web", "app") == NEW
    assert kube.get("Deployment", "web")["metadata"]["annotations"][CAUSE] == (
        "release 1.5 by the pipeline"
    )
    assert [r.method for r in kube.requests] == ["GET", "PATCH"]


def test_an_image_already_set_is_not_patched(spec, kube, ctx):
    kube.add("Deployment", "api", {"app": NEW})
    output = run(spec, ctx, name="api")
    assert output["changed"] is False
    assert output["old_image"] == output["new_image"] == NEW
    assert kube.seen("PATCH") == []
    assert messages(ctx)[0] == f"deployment default/api: already runs {NEW}; nothing to change"


def test_a_repeated_attempt_follows_its_own_patch_instead_of_patching_again(spec, kube, tmp_path):
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    key = uuid.uuid4().hex
    first = run(spec, context(kubeconfig, key), wait=False)
    again_ctx = context(kubeconfig, key)  # as after a crash: nothing remembered in-process
    again = run(spec, again_ctx)
    assert len(kube.seen("PATCH")) == 1
    assert (again["old_image"], again["changed"]) == (first["old_image"], True) == (OLD, True)
    assert messages(again_ctx)[0] == (
        f"deployment default/web: an earlier attempt already set {NEW} (was {OLD}); "
        "following that rollout"
    )
    # Another run (another key) finds the image set by someone else: nothing to change.
    other = run(spec, context(kubeconfig))
    assert (other["old_image"], other["changed"]) == (NEW, False)


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulsets_and_daemonsets_are_followed_to_the_end(spec, kube, ctx, kind):
    kube.add(kind, "db", {"app": OLD}, namespace="data")
    output = run(spec, ctx, kind=kind, namespace="data", name="db")
    assert (output["kind"], output["changed"], output["revision"]) == (kind, True, None)
    assert kube.image(kind, "db", "app", namespace="data") == NEW
    assert kube.get(kind, "db", namespace="data")["metadata"]["generation"] == 2
    assert messages(ctx)[-1] in (
        'statefulset "db" rolling update complete',
        'daemon set "db" successfully rolled out',
    )


def test_on_delete_strategy_cannot_be_waited_for_and_is_not_patched(spec, kube, ctx):
    kube.add("StatefulSet", "db", {"app": OLD}, strategy="OnDelete")
    message = failure(spec, ctx, PermanentFailure, kind="StatefulSet", name="db")
    assert message == (
        "statefulset default/db uses the OnDelete update strategy, so there is no rollout to "
        "follow; set `wait: false` to only set the image"
    )
    assert kube.seen("PATCH") == []


# -- failed rollouts -----------------------------------------------------------------------


def test_a_stalled_rollout_fails_with_its_deadline_and_keeps_the_new_image(spec, kube, ctx):
    kube.add("Deployment", "stuck", {"app": OLD}, behaviour="stall")
    message = failure(spec, ctx, PermanentFailure, name="stuck")
    assert message == (
        f"deployment default/stuck: rollout of {NEW} did not progress within its deadline "
        f"(ProgressDeadlineExceeded); not rolled back (rollback_on_failure is off), it keeps "
        f"{NEW} (old_image={OLD}, new_image={NEW}, rolled_back=false)"
    )
    assert kube.image("Deployment", "stuck", "app") == NEW


def test_a_stalled_rollout_is_rolled_back_when_asked(spec, kube, ctx):
    kube.add("Deployment", "flaky", {"app": OLD}, behaviour="fail-then-rollback-ok")
    message = failure(spec, ctx, PermanentFailure, name="flaky", rollback_on_failure=True)
    assert message == (
        f"deployment default/flaky: rollout of {NEW} did not progress within its deadline "
        f"(ProgressDeadlineExceeded); rolled back to {OLD} "
        f"(old_image={OLD}, new_image={NEW}, rolled_back=true)"
    )
    assert kube.image("Deployment", "flaky", "app") == OLD
    assert len(kube.seen("PATCH")) == 2
    back = kube.seen("PATCH")[-1]
    assert back.body["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": OLD}]
    annotations = kube.get("Deployment", "flaky")["metadata"]["annotations"]
    assert annotations[CAUSE] == f"hookwise: rollback of {NEW} (rule deploy, event E1)"
    assert "hookwise/rollout" not in annotations
    assert messages(ctx)[-1] == f"deployment default/flaky: rolled back to {OLD}"
    # The rollback's own rollout goes through: following it changes nothing and succeeds.
    again = run(spec, ctx, name="flaky", image=OLD)
    assert (again["changed"], again["revision"]) == (False, "3")
    assert len(kube.seen("PATCH")) == 2


def test_a_rollout_that_runs_out_of_time_is_rolled_back(spec, kube, ctx):
    kube.add("StatefulSet", "db", {"app": OLD}, behaviour="stall")
    params = {"kind": "StatefulSet", "name": "db", "timeout": "0.3s", "rollback_on_failure": True}
    message = failure(spec, ctx, PermanentFailure, **params)
    assert message == (
        f"statefulset default/db: rollout of {NEW} did not finish within 0.3s (waiting for 1 "
        f"pods to be ready); rolled back to {OLD} (old_image={OLD}, new_image={NEW}, "
        "rolled_back=true)"
    )
    assert kube.image("StatefulSet", "db", "app") == OLD


def test_the_wait_ends_before_the_action_s_own_timeout(spec, kube, ctx):
    kube.add("DaemonSet", "agent", {"app": OLD}, behaviour="stall")
    ctx.timeout = 2.0  # hookwise stops waiting for the attempt after 2s
    started = time.monotonic()
    message = failure(spec, ctx, PermanentFailure, kind="DaemonSet", name="agent")
    assert time.monotonic() - started < 2.0
    assert "did not finish within 1.6s (1 out of 3 new pods have been updated)" in message


def test_stopping_hookwise_ends_a_wait_at_once(spec, kube, ctx):
    kube.add("Deployment", "stuck", {"app": OLD}, behaviour="stall")
    threading.Timer(0.3, hookwise_kubernetes.hookwise_shutdown).start()
    started = time.monotonic()
    with pytest.raises(RetryLater, match="hookwise is stopping"):
        run(spec, ctx, name="stuck", timeout="60s", poll_interval="5s")
    assert time.monotonic() - started < 3
    hookwise_kubernetes.hookwise_startup()
    assert not hookwise_kubernetes._stopping.is_set()


# -- refused requests ----------------------------------------------------------------------


def test_wrong_credentials_are_permanent(spec, kube, tmp_path):
    ctx = context(kube.kubeconfig(tmp_path / "kubeconfig", token="not-a-token"))
    message = failure(spec, ctx, PermanentFailure)
    assert message == (
        "get deployment default/web: the API server refused the credentials (401); check the "
        f"token or client certificate of kubeconfig {tmp_path / 'kubeconfig'}"
    )
    assert "not-a-token" not in message


def test_missing_rbac_permission_names_verb_and_resource(spec, kube, tmp_path):
    ctx = context(kube.kubeconfig(tmp_path / "kubeconfig", token=READER_TOKEN))
    message = failure(spec, ctx, PermanentFailure)
    assert message == (
        'patch deployment default/web: forbidden (403): deployments.apps "web" is forbidden: '
        'User "system:serviceaccount:ci:reader" cannot patch resource "deployments" in API '
        'group "apps" in the namespace "default"; the account needs the RBAC verb "patch" on '
        '"deployments" (API group "apps") in namespace "default"'
    )
    assert kube.image("Deployment", "web", "app") == OLD


def test_unknown_workload_names_namespace_kind_and_name(spec, kube, ctx):
    message = failure(spec, ctx, PermanentFailure, kind="DaemonSet", namespace="ops", name="nope")
    assert message == (
        'daemonset ops/nope: no DaemonSet named "nope" in namespace "ops" (404); check kind, '
        "namespace and name"
    )


def test_unknown_container_lists_the_containers_there_are(spec, kube, ctx):
    message = failure(spec, ctx, PermanentFailure, container="api")
    assert message == (
        'deployment default/web has no container "api" in its pod template; its containers: '
        "app, sidecar"
    )
    assert kube.seen("PATCH") == []


@pytest.mark.parametrize(("status", "method"), [(500, "GET"), (503, "PATCH"), (409, "PATCH")])
def test_server_errors_and_conflicts_are_retried(spec, kube, ctx, status, method):
    kube.fail_next(status, method)
    message = failure(spec, ctx, RetryLater)
    verb = method.lower()
    assert message.startswith(f"{verb} deployment default/web: ")
    assert str(status) in message
    assert kube.image("Deployment", "web", "app") == OLD
    assert run(spec, ctx)["changed"] is True  # the next attempt goes through


def test_rate_limit_retries_after_retry_after(spec, kube, ctx):
    kube.fail_next(429, "PATCH", headers={"Retry-After": "7"})
    with pytest.raises(RetryLater) as caught:
        run(spec, ctx)
    assert caught.value.delay == 7
    assert str(caught.value) == (
        "patch deployment default/web: the API server answered 429: scripted failure"
    )


def test_transient_errors_while_following_are_polled_through(spec, kube, ctx):
    kube.fail_next(503, "GET", times=2, after=1)  # the read before the patch goes through
    output = run(spec, ctx)
    assert (output["changed"], output["revision"]) == (True, "2")
    assert len(kube.seen("PATCH")) == 1
    warnings = [line["message"] for line in ctx.log.lines if line["level"] == "warning"]
    assert (
        warnings
        == ["get deployment default/web: the API server answered 503: scripted failure; polling on"]
        * 2
    )


def test_a_real_conflict_is_detected_by_resource_version(spec, kube, ctx):
    """Someone changes the workload between hookwise's read and its patch."""
    original = kube._patch

    def meddle(workload, resource, body):
        kube.objects[("default", "deployments", "web")].body["metadata"]["resourceVersion"] = "1"
        return original(workload, resource, body)

    kube._patch = meddle
    message = failure(spec, ctx, RetryLater)
    assert message.startswith("patch deployment default/web: it changed since it was read (409)")
    assert kube.image("Deployment", "web", "app") == OLD


def test_connection_refused_is_retryable(spec, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = context(write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}"))
    message = failure(spec, ctx, RetryLater)
    assert message.startswith("get deployment default/web: cannot reach the API server: ")
    assert "Connection refused" in message


def test_no_answer_in_time_is_retryable(spec, tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        ctx = context(write_kubeconfig(tmp_path / "kubeconfig", url), timeout="0.2s")
        started = time.monotonic()
        message = failure(spec, ctx, RetryLater)
    assert time.monotonic() - started < 3
    assert message.startswith("get deployment default/web: cannot reach the API server: ")
    assert "timed out" in message


def test_egress_policy_applies_at_connect_time(spec, kube, ctx):
    ctx.egress = EgressPolicy()  # loopback not allowed
    with pytest.raises(EgressDenied, match=r"egress to 127\.0\.0\.1 .* egress\.allow"):
        run(spec, ctx)
    assert kube.requests == []


def test_redirects_are_refused(spec, kube, ctx):
    kube.fail_next(307, headers={"Location": "http://127.0.0.2:1/elsewhere"})
    with pytest.raises(RedirectRefused, match=r"answered 307, a redirect to http://127\.0\.0\.2"):
        run(spec, ctx)
    assert len(kube.requests) == 1


def test_a_missing_kubeconfig_is_permanent(spec, tmp_path):
    ctx = context(tmp_path / "nope")
    message = failure(spec, ctx, PermanentFailure)
    assert message.startswith(f"cannot use kubeconfig {tmp_path / 'nope'}: ")


# -- parameters and settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"kind": "Pod"}, "Input should be 'Deployment', 'StatefulSet' or 'DaemonSet'"),
        ({"name": "Web_1"}, "'Web_1' is not a DNS-1123 subdomain name"),
        ({"namespace": "a.b"}, "'a.b' is not a DNS-1123 label"),
        ({"image": "registry/app:1.5 --privileged"}, "is not an image reference"),
        ({"replicas": 3}, "Extra inputs are not permitted"),
    ],
)
def test_params_are_validated(spec, params, error):
    values = {"name": "web", "container": "app", "image": NEW, **params}
    with pytest.raises(ValidationError, match=error):
        spec.params.model_validate(values)


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({}, "set either `in_cluster: true` or `kubeconfig: <path>`, not both"),
        ({"in_cluster": True, "kubeconfig": "/k"}, "set either `in_cluster: true`"),
        ({"in_cluster": True, "context": "prod"}, "`context` needs `kubeconfig`"),
    ],
)
def test_settings_need_exactly_one_way_to_connect(values, error):
    with pytest.raises(ValidationError, match=error):
        hookwise_kubernetes.KubernetesSettings.model_validate(values)


RULE = """\
rules:
  - name: roll-out-pushed-images
    when:
      source: artifactory
      domain: docker
      event_type: pushed
    actions:
      - id: rollout
        uses: kubernetes.rollout
        timeout: 30s
        with:
          kind: {kind}
          name: web
          container: app
          image: "{{{{ artifact.image }}}}:{{{{ artifact.tag }}}}"
          timeout: 20s
          poll_interval: 0.05s
"""
SETTINGS = "integrations:\n  kubernetes:\n    kubeconfig: ${KUBECONFIG_PATH}\n"


def test_check_reports_a_literal_bad_kind_and_accepts_a_templated_one(tmp_path: Path):
    bad = project(tmp_path, RULE.format(kind="Pod"), extra=SETTINGS)
    result = run_cli("check", cwd=bad, env={"KUBECONFIG_PATH": "/k"})
    assert result.returncode == 1, result.stderr
    assert "rules/main.yaml:12:17: [error] rules[0].actions[0].with.kind: " in result.stderr
    good = project(tmp_path, RULE.format(kind="'{{ data.kind }}'"), extra=SETTINGS)
    result = run_cli("check", cwd=good, env={"KUBECONFIG_PATH": "/k"})
    assert result.returncode == 0, result.stderr


def test_plugins_lists_the_action_with_its_parameters(tmp_path: Path):
    result = run_cli("plugins", "--json", cwd=project(tmp_path))
    report = json.loads(result.stdout)
    params = report["actions"]["kubernetes.rollout"]["params"]
    assert params["required"] == ["name", "container", "image"]
    assert params["properties"]["kind"]["enum"] == ["Deployment", "StatefulSet", "DaemonSet"]
    assert "kubernetes" in report["plugins"]


# -- end to end ----------------------------------------------------------------------------


def test_a_pushed_image_is_rolled_out_by_a_served_rule(hookwise_factory, kube, tmp_path):
    kube.add("Deployment", "web", {"app": "library/ubuntu:22.04"})
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    server = hookwise_factory(RULE.format(kind="Deployment"), extra=SETTINGS)
    server.env.update(KUBECONFIG_PATH=str(kubeconfig))
    server.start()

    response = server.post((FIXTURES / "artifactory" / "docker.pushed.json").read_bytes())
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    [run_] = server.wait_for_runs(event_id, {"succeeded", "dead"})

    assert run_["status"] == "succeeded", run_
    assert run_["output"]["rollout"] == {
        "kind": "Deployment",
        "namespace": "default",
        "name": "web",
        "old_image": "library/ubuntu:22.04",
        "new_image": "library/ubuntu:latest",
        "revision": "2",
        "changed": True,
        "rolled_back": False,
    }
    assert kube.image("Deployment", "web", "app") == "library/ubuntu:latest"
    assert kube.get("Deployment", "web")["metadata"]["annotations"][CAUSE] == (
        f"hookwise rule roll-out-pushed-images, event {event_id}"
    )
    assert len(kube.seen("PATCH")) == 1
    assert ADMIN_TOKEN not in json.dumps(run_)


def test_a_version_policy_skips_a_tag_that_is_not_newer_without_patching(spec, kube, ctx):
    kube.add("Deployment", "api", {"app": "registry.example.com/api:1.5.2"})
    with pytest.raises(SkipRun) as caught:
        run(spec, ctx, name="api", image="registry.example.com/api:1.4.0",
            policy={"semver": "minor"})  # fmt: skip
    assert str(caught.value) == "deployment default/api: 1.4.0 is not newer than running 1.5.2"
    assert kube.seen("PATCH") == []
    output = run(spec, ctx, name="api", image="registry.example.com/api:1.6.0", wait=False,
                 policy={"semver": "minor"})  # fmt: skip
    assert output["changed"] is True
    assert kube.image("Deployment", "api", "app") == "registry.example.com/api:1.6.0"
