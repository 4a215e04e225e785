"""docker.pull and docker.redeploy against a real Docker-API engine and a real registry.

The engine is Podman's API service and the registry the CNCF distribution registry, both
on this machine (tests/integrations/podman.py starts them). The tests that need no
engine come first: settings, references, what is kept, locking and `hookwise check`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import httpx
import pytest
import requests
from pydantic import ValidationError

from hookwise.actions import ActionContext
from hookwise.egress import EgressPolicy
from hookwise.errors import PermanentFailure, RetryLater, SkipRun
from hookwise.event import Event
from hookwise.secrets import known, secret_values
from tests.conftest import fixture_bytes, project, run_cli, wait_until
from tests.integrations import podman
from tests.integrations.podman import Lab, free_port

try:
    import docker
    from hookwise_docker import keep, redeploy
    from hookwise_docker.failures import classify
    from hookwise_docker.pull import PullParams, Reference, docker_pull
    from hookwise_docker.redeploy import RedeployParams, docker_redeploy
    from hookwise_docker.settings import DockerSettings
except ImportError as exc:  # the plugin is a separate distribution
    if os.environ.get("CI"):
        raise
    pytest.skip(
        f"hookwise-docker is not installed ({exc}): pip install -e plugins/docker",
        allow_module_level=True,
    )

# The harness's fixtures, found by pytest under these names.
podman_lab = podman.podman_lab
lab = podman.lab
KEY = "k" * 32


def context(settings: dict, key: str = KEY) -> ActionContext:
    event = Event("E1", "artifactory", "artifactory", "docker", "promoted", None, 0.0, {}, {})
    ctx = ActionContext(event, "deploy-helloworld", "deploy", 1, key, EgressPolicy())
    ctx.settings = DockerSettings.model_validate(settings)
    return ctx


def messages(ctx: ActionContext) -> list[str]:
    return [line["message"] for line in ctx.log.lines]


def page(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text.strip()
    except httpx.HTTPError:
        return None


def serves(port: int, text: str) -> str:
    return wait_until(lambda: page(port) == text and text, timeout=10)


def run_v1(lab: Lab, port: int, **extra) -> docker.models.containers.Container:
    """helloworld v1 as an operator would have started it, with settings of its own."""
    client = lab.client()
    for line in client.api.pull(
        lab.image("v1"),
        stream=True,
        decode=True,
        auth_config={"username": lab.username, "password": lab.password},
    ):
        assert "error" not in line, line
    container = client.containers.run(
        lab.image("v1"),
        name="helloworld",
        detach=True,
        ports={"8080/tcp": port},
        environment={"APP_MODE": "blue"},
        labels={"team": "web"},
        restart_policy={"Name": "unless-stopped"},
        **extra,
    )
    serves(port, "hello v1")
    return container


def redeploy_params(lab: Lab, tag: str, **extra) -> RedeployParams:
    return RedeployParams.model_validate(
        {"container": "helloworld", "image": lab.image(tag), "stable_for": "1s", **extra}
    )


# -- without an engine ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({"base_url": "docker.sock"}, "base_url must start with one of unix://"),
        ({"base_url": "tcp://:2376"}, "has no host"),
        ({"base_url": "unix://"}, "names no socket path"),
        ({"registry": "r.example", "username": "u"}, "missing: password"),
        ({"tls_client_cert": "/c.pem"}, "tls_client_cert and tls_client_key go together"),
        ({"registries": {"r.example": {"username": "u"}}}, "password"),
        ({"token": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_reject_what_check_should_catch(settings, message_part):
    with pytest.raises(ValidationError) as caught:
        DockerSettings.model_validate(settings)
    assert message_part in str(caught.value)


def test_credentials_go_only_to_their_registry():
    settings = DockerSettings.model_validate(
        {
            "registries": {"https://index.docker.io/v1/": {"username": "hub", "password": "p1"}},
            "registry": "Registry.Example:5000",
            "username": "me",
            "password": "p2",
        }
    )
    assert settings.credentials_for("docker.io").username == "hub"
    assert settings.credentials_for("registry.example:5000").username == "me"
    assert settings.credentials_for("registry.example") is None
    assert sorted(secret_values(settings)) == ["p1", "p2"]
    assert "p2" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "registry", "pinned"),
    [
        ("127.0.0.1:5000/helloworld:v2", "127.0.0.1:5000", "v2"),
        ("helloworld", "docker.io", "latest"),
        ("library/nginx:1.27", "docker.io", "1.27"),
        ("localhost/app:1", "localhost", "1"),
        (f"r.example/team/app@sha256:{'a' * 64}", "r.example", f"sha256:{'a' * 64}"),
    ],
)
def test_references(text, registry, pinned):
    ref = Reference.parse(text)
    assert (ref.registry, ref.pinned, str(ref)) == (registry, pinned, text)


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:5000/helloworld:v2/../evil",  # a templated tag cannot add a path
        "127.0.0.1:5000/helloworld:evil.example/x:1",
        "127.0.0.1:5000/HelloWorld:v1",
        "helloworld:v1 --privileged",
        "",
    ],
)
def test_a_template_cannot_turn_the_image_into_another_one(text):
    with pytest.raises(ValidationError, match="is not an image reference"):
        PullParams.model_validate({"image": text})


def test_what_is_kept_is_the_containers_own_not_the_images():
    image = {
        "Env": ["PATH=/bin", "GREETING=image-v1"],
        "Cmd": ["/bin/sh", "-c", "serve"],
        "Labels": {"org.example.version": "v1"},
        "WorkingDir": "",
    }
    attrs = {
        "Id": "0123456789ab" + "c" * 52,
        "Image": "sha256:old",
        "Config": {
            "Hostname": "0123456789ab",
            "Env": ["PATH=/bin", "GREETING=image-v1", "APP_MODE=blue", "HOSTNAME=0123456789ab"],
            "Cmd": ["/bin/sh", "-c", "serve"],
            "Entrypoint": [],
            "Labels": {"org.example.version": "v1", "team": "web", keep.OWN_LABELS + "key": "x"},
            "WorkingDir": "/",
            "StopSignal": "15",
        },
        "HostConfig": {
            "PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "NetworkMode": "bridge",
            "CapAdd": [],
            "Memory": 0,
            "ExtraHosts": ["db:10.0.0.5"],
            "LogConfig": {"Type": "json-file", "Config": None},
        },
        "Mounts": [
            {"Type": "bind", "Source": "/srv/conf", "Destination": "/etc/app", "RW": False},
            {"Type": "volume", "Name": "data", "Destination": "/data", "RW": True},
        ],
        "NetworkSettings": {
            "Networks": {
                "podman": {"Aliases": ["0123456789ab"]},
                "backend": {"Aliases": ["0123456789ab", "web"]},
            }
        },
    }
    kept = keep.kept_settings(attrs, image)
    assert kept == {
        "environment": {"APP_MODE": "blue"},
        "labels": {"team": "web"},
        "extra_hosts": ["db:10.0.0.5"],
        "log_config": {"Type": "json-file", "Config": {}},
        "restart_policy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "ports": {"8080/tcp": [("", "18080")]},
        "volumes": ["/srv/conf:/etc/app:ro", "data:/data:rw"],
        "networks": {"backend": ["web"]},
    }
    overridden = keep.apply_overrides(
        kept,
        {
            "env": {"APP_MODE": "green"},
            "ports": {8080: "127.0.0.1:28080", "9090/udp": 9090},
            "volumes": ["/srv/conf2:/etc/app"],
            "restart_policy": "no",
            "network": "frontend",
        },
    )
    assert overridden["environment"] == {"APP_MODE": "green"}
    assert overridden["ports"] == {"8080/tcp": [("127.0.0.1", "28080")], "9090/udp": [("", "9090")]}
    assert overridden["volumes"] == ["data:/data:rw", "/srv/conf2:/etc/app"]
    assert "restart_policy" not in overridden
    assert overridden["networks"] == {"frontend": []}


@pytest.mark.parametrize(
    ("extra", "message_part"),
    [
        ({"container": "../x"}, "is not a container name"),
        ({"restart_policy": "sometimes"}, "restart_policy must be"),
        ({"volumes": ["/only-one-part"]}, "is not source:destination"),
        ({"health": "maybe"}, "health"),
    ],
)
def test_redeploy_params_are_checked(extra, message_part):
    with pytest.raises(ValidationError, match=message_part):
        RedeployParams.model_validate({"container": "app", "image": "app:1", **extra})


def test_an_unreachable_engine_is_retried(tmp_path: Path):
    ctx = context({"base_url": f"unix://{tmp_path}/no-such.sock"})
    with pytest.raises(RetryLater, match=r"cannot reach the Docker engine at unix://.*no such"):
        docker_pull(PullParams(image="helloworld:v1"), ctx)


def test_two_redeploys_of_one_container_never_overlap(tmp_path: Path):
    ctx = context({"base_url": f"unix://{tmp_path}/engine.sock"})
    params = RedeployParams(
        container="helloworld", image="helloworld:v2", timeout=0.2, stable_for=0.1
    )
    lock = redeploy._locks.setdefault((ctx.settings.base_url, "helloworld"), threading.Lock())
    with (
        lock,
        pytest.raises(RetryLater, match="another redeploy of container helloworld") as caught,
    ):
        docker_redeploy(params, ctx)
    assert caught.value.delay == pytest.approx(0.2)


def api_error(status: int, message: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status} Server Error", response, explanation=message)


@pytest.mark.parametrize(
    ("exc", "kind", "message_part"),
    [
        (api_error(404, "manifest unknown"), PermanentFailure, "repository or tag not found"),
        (api_error(401, "bad credentials"), PermanentFailure, "refused the credentials"),
        (api_error(403, "insufficient scope"), PermanentFailure, "refused the credentials"),
        (api_error(500, "unauthorized: pw=hunter2"), PermanentFailure, "pw=***"),
        (api_error(400, "invalid platform"), PermanentFailure, "refused the request (400)"),
        (api_error(500, "toomanyrequests: slow down"), RetryLater, "rate limiting"),
        (api_error(503, "storage busy"), RetryLater, "storage busy"),
        (requests.ReadTimeout("read timed out"), RetryLater, "did not answer in time"),
        (requests.ConnectionError("reset by peer"), RetryLater, "lost the connection"),
        (docker.errors.InvalidArgument("bad"), PermanentFailure, "bad"),
    ],
)
def test_engine_failures_are_classified(exc, kind, message_part):
    known.add(["hunter2"])  # as the runner registers the integration's passwords
    error = classify("pull x", exc)
    assert type(error) is kind
    assert message_part in str(error)
    assert "hunter2" not in str(error)


RULE = """\
rules:
  - name: deploy
    when: {source: artifactory}
    actions:
      - uses: docker.redeploy
        with: {container: helloworld, image: "127.0.0.1:5000/helloworld:{{ artifact.tag }}"}
"""


def test_check_positions_a_bad_base_url(tmp_path: Path):
    extra = "integrations:\n  docker:\n    base_url: /var/run/docker.sock\n"
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    assert (
        "hookwise.yaml:15:15: [error] integrations.docker.base_url: base_url must start with one "
        "of unix://, tcp://, http://, https://, npipe://, got '/var/run/docker.sock'"
    ) in result.stderr, result.stderr


def test_check_positions_credentials_without_a_password(tmp_path: Path):
    extra = "integrations:\n  docker:\n    registry: 127.0.0.1:5000\n    username: deployer\n"
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    assert (
        "hookwise.yaml:15:5: [error] integrations.docker: registry, username and password go "
        "together; missing: password"
    ) in result.stderr, result.stderr


def test_check_accepts_the_documented_settings(tmp_path: Path):
    extra = (
        "integrations:\n  docker:\n    base_url: unix:///run/podman/podman.sock\n"
        "    registries:\n      127.0.0.1:5000:\n        username: deployer\n"
        "        password: ${REGISTRY_PASSWORD}\n"
    )
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root, env={"REGISTRY_PASSWORD": "pw"})
    assert result.returncode == 0, result.stderr


# -- docker.pull ------------------------------------------------------------------------------


def test_pull_by_tag_then_by_digest(lab: Lab):
    ctx = context(lab.settings())
    out = docker_pull(PullParams(image=lab.image("v1")), ctx)
    assert out["image"] == lab.image("v1")
    assert out["id"].startswith("sha256:")
    assert out["digest"].startswith("sha256:")
    assert messages(ctx) == [f"pulled {lab.image('v1')} ({out['id']}, {out['digest']})"]
    by_digest = f"{lab.registry}/helloworld@{out['digest']}"
    again = docker_pull(PullParams(image=by_digest), context(lab.settings()))
    assert again == {"image": by_digest, "id": out["id"], "digest": out["digest"]}


def test_pull_of_a_missing_tag_is_permanent(lab: Lab):
    with pytest.raises(PermanentFailure, match="repository or tag not found") as caught:
        docker_pull(PullParams(image=lab.image("v9")), context(lab.settings()))
    assert "manifest unknown" in str(caught.value)


def test_refused_credentials_are_permanent_and_not_shown(lab: Lab):
    settings = lab.settings(registries={lab.registry: {"username": "deployer", "password": "nope"}})
    with pytest.raises(PermanentFailure, match="the registry refused the credentials") as caught:
        docker_pull(PullParams(image=lab.image("v1")), context(settings))
    assert "nope" not in str(caught.value)
    with pytest.raises(PermanentFailure, match="authentication required"):
        docker_pull(PullParams(image=lab.image("v1")), context(lab.settings(registries={})))


def test_an_unreachable_registry_is_retried(lab: Lab):
    image = f"127.0.0.1:{free_port()}/helloworld:v1"
    with pytest.raises(RetryLater, match="connection refused"):
        docker_pull(PullParams(image=image), context(lab.settings()))


# -- docker.redeploy --------------------------------------------------------------------------


def test_redeploy_keeps_settings_then_rolls_back_a_broken_version(lab: Lab):
    port = free_port()
    v1 = run_v1(lab, port)
    client = lab.client()

    # A missing tag fails before anything is touched.
    with pytest.raises(PermanentFailure, match="repository or tag not found"):
        docker_redeploy(redeploy_params(lab, "v9"), context(lab.settings()))
    assert client.containers.get("helloworld").id == v1.id
    assert page(port) == "hello v1"

    # v1 -> v2: same name and host port, the container's own env and labels kept.
    ctx = context(lab.settings())
    out = docker_redeploy(redeploy_params(lab, "v2", env={"APP_COLOR": "green"}), ctx)
    v2 = client.containers.get("helloworld")
    assert out == {
        "container": "helloworld",
        "container_id": v2.id,
        "image": lab.image("v2"),
        "old_image_id": v1.image.id,
        "new_image_id": v2.image.id,
        "rolled_back": False,
    }
    assert serves(port, "hello v2")
    env = dict(e.split("=", 1) for e in v2.attrs["Config"]["Env"])
    assert (env["APP_MODE"], env["APP_COLOR"]) == ("blue", "green")
    assert env["GREETING"] == "image-v2"  # the old image's default was not frozen in
    labels = v2.labels
    assert (labels["team"], labels["org.example.version"]) == ("web", "v2")
    assert v2.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert [c.name for c in client.containers.list(all=True)] == ["helloworld"]
    log = messages(ctx)
    assert (
        log[1]
        == f"stopped helloworld ({v1.short_id}) and renamed it helloworld-previous-{v1.id[:12]}"
    )
    assert log[-1] == f"removed the previous container helloworld-previous-{v1.id[:12]}"

    # Retrying the attempt that did it (same idempotency key) changes nothing.
    ctx = context(lab.settings())
    assert docker_redeploy(redeploy_params(lab, "v2", env={"APP_COLOR": "green"}), ctx) == out
    assert messages(ctx) == [f"helloworld already runs {v2.image.id}: an earlier attempt did it"]

    # v2 -> v3, whose command fails: rolled back to the v2 container, nothing left over.
    ctx = context(lab.settings(), key="3" * 32)
    with pytest.raises(PermanentFailure) as caught:
        docker_redeploy(redeploy_params(lab, "v3"), ctx)
    message = str(caught.value)
    assert message.startswith(
        f"docker.redeploy of helloworld to {lab.image('v3')} failed and was rolled back: "
    )
    assert "exited with code 3" in message or "keeps restarting" in message
    assert f"container_id={v2.id}, old_image_id={v2.image.id}" in message
    assert "rolled_back=true" in message
    assert message.endswith("v3: cannot read /etc/app.conf, giving up")
    assert serves(port, "hello v2")
    restored = client.containers.get("helloworld")
    assert (restored.id, restored.status) == (v2.id, "running")
    assert [c.name for c in client.containers.list(all=True)] == ["helloworld"]
    assert "rolled back: helloworld" in messages(ctx)[-1]


def test_first_deploy_creates_the_container_and_a_failed_one_leaves_none(lab: Lab):
    port = free_port()
    client = lab.client()
    with pytest.raises(PermanentFailure, match="no previous container to roll back to"):
        docker_redeploy(redeploy_params(lab, "v3", ports={8080: port}), context(lab.settings()))
    assert client.containers.list(all=True) == []
    with pytest.raises(PermanentFailure, match="health: true, but neither the container nor"):
        docker_redeploy(redeploy_params(lab, "v1", health=True), context(lab.settings()))
    assert client.containers.list(all=True) == []

    ctx = context(lab.settings())
    params = redeploy_params(lab, "v1", ports={8080: port}, labels={"team": "web"})
    out = docker_redeploy(params, ctx)
    assert (out["old_image_id"], out["rolled_back"]) == (None, False)
    assert messages(ctx)[1] == "there is no container helloworld: creating it"
    assert serves(port, "hello v1")
    assert client.containers.get("helloworld").labels["team"] == "web"


def test_health_check_is_waited_for_and_an_unhealthy_version_rolls_back(lab: Lab):
    port = free_port()
    check = {
        "test": ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"],
        "interval": 1_000_000_000,
        "timeout": 1_000_000_000,
        "retries": 1,
    }
    run_v1(lab, port, healthcheck=check)
    ctx = context(lab.settings())
    docker_redeploy(redeploy_params(lab, "v2", timeout="20s"), ctx)
    assert "helloworld is healthy" in messages(ctx)
    assert serves(port, "hello v2")

    # v4 runs, but serves on another port: its kept health check fails.
    with pytest.raises(PermanentFailure, match="its health check failed: exit code 1") as caught:
        docker_redeploy(
            redeploy_params(lab, "v4", timeout="20s"), context(lab.settings(), "4" * 32)
        )
    assert "rolled_back=true" in str(caught.value)
    assert serves(port, "hello v2")


def test_a_probe_catches_a_broken_version_whose_image_has_no_health_check(lab: Lab):
    """The images here are Podman imports without HEALTHCHECK, like OCI images Podman
    builds: v4 runs but serves on 8081, which only a probe of 8080 notices."""
    port = free_port()
    run_v1(lab, port)
    http_probe = {"http": {"port": 8080, "path": "/", "contains": "hello v2"}, "successes": 2,
                  "interval": "0.2s"}  # fmt: skip
    ctx = context(lab.settings())
    docker_redeploy(redeploy_params(lab, "v2", probe=http_probe, timeout="20s"), ctx)
    assert "helloworld passed its probe 2 time(s) in a row" in messages(ctx)
    assert serves(port, "hello v2")

    # Without a probe v4 would count as deployed: it keeps running.
    for number, probe in enumerate(
        [{"http": {"port": 8080}}, {"tcp": {"port": 8080}},
         {"exec": ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]}]
    ):  # fmt: skip
        params = redeploy_params(lab, "v4", probe={**probe, "interval": "0.3s"}, timeout="4s")
        with pytest.raises(PermanentFailure, match="its probe failed: ") as caught:
            docker_redeploy(params, context(lab.settings(), f"{number}" * 32))
        assert "rolled_back=true" in str(caught.value)
        assert serves(port, "hello v2")
    assert "GET http://127.0.0.1" in str(caught.value) or "exited with 1" in str(caught.value)


def test_a_policy_skips_a_tag_that_does_not_qualify_before_touching_anything(lab: Lab):
    port = free_port()
    v1 = run_v1(lab, port)
    for policy, reason in [
        ({"glob": "v[3-9]"}, "helloworld: v2 does not match the policy's glob v[3-9]"),
        ({"semver": "major"}, "helloworld: v2 is not a semantic version (policy semver: major)"),
    ]:
        with pytest.raises(SkipRun) as caught:
            docker_redeploy(redeploy_params(lab, "v2", policy=policy), context(lab.settings()))
        assert str(caught.value) == reason
    assert lab.client().containers.get("helloworld").id == v1.id
    assert serves(port, "hello v1")
    docker_redeploy(redeploy_params(lab, "v2", policy={"glob": "v[2-9]"}), context(lab.settings()))
    assert serves(port, "hello v2")


@pytest.mark.parametrize(
    ("probe", "message_part"),
    [
        ({"http": {"port": 8080}, "tcp": {"port": 8080}}, "exactly one of http, tcp or exec"),
        ({}, "exactly one of http, tcp or exec"),
        ({"http": {"port": 8080, "path": "healthz"}}, "should match pattern"),
        ({"tcp": {"port": 70000}}, "less than or equal to 65535"),
        ({"exec": []}, "at least 1 item"),
    ],
)
def test_probe_mistakes_are_caught_when_rules_load(probe, message_part):
    with pytest.raises(ValidationError, match=message_part):
        RedeployParams.model_validate({"container": "c", "image": "r/i:1", "probe": probe})


def test_redeploy_keeps_network_mounts_user_and_working_dir(lab: Lab, tmp_path: Path):
    client = lab.client()
    network = client.networks.create("hookwise-test-net")
    try:
        port = free_port()
        (tmp_path / "conf").mkdir()
        run_v1(
            lab,
            port,
            network="hookwise-test-net",
            volumes=[f"{tmp_path}/conf:/conf:ro", "hookwise-test-data:/data"],
            user="65534",
            working_dir="/www",
            tmpfs={"/run": ""},
        )
        docker_redeploy(redeploy_params(lab, "v2"), context(lab.settings()))
        assert serves(port, "hello v2")
        v2 = client.containers.get("helloworld")
        assert list(v2.attrs["NetworkSettings"]["Networks"]) == ["hookwise-test-net"]
        mounts = {
            m["Destination"]: (m.get("Name") or m["Source"], m["RW"]) for m in v2.attrs["Mounts"]
        }
        assert mounts == {
            "/conf": (f"{tmp_path}/conf", False),
            "/data": ("hookwise-test-data", True),
        }
        assert (v2.attrs["Config"]["User"], v2.attrs["Config"]["WorkingDir"]) == ("65534", "/www")
        assert "/run" in v2.attrs["HostConfig"]["Tmpfs"]
    finally:
        lab.remove_containers()
        network.remove()
        lab.podman("volume", "rm", "--force", "hookwise-test-data", check=False)


def test_a_start_error_rolls_back(lab: Lab):
    port, taken = free_port(), socket.create_server(("127.0.0.1", 0))
    with taken:
        v1 = run_v1(lab, port)
        busy = taken.getsockname()[1]
        params = redeploy_params(lab, "v2", ports={8080: f"127.0.0.1:{busy}"})
        with pytest.raises(PermanentFailure, match=r"it failed to start: .*address already in use"):
            docker_redeploy(params, context(lab.settings()))
    assert serves(port, "hello v1")
    assert [c.id for c in lab.client().containers.list(all=True)] == [v1.id]


def test_waiting_stops_in_time_to_roll_back_within_the_attempts_limit(lab: Lab):
    port = free_port()
    slow = {"test": ["CMD", "/bin/true"], "interval": 60_000_000_000, "retries": 1}
    v1 = run_v1(lab, port, healthcheck=slow)  # its first probe would come after a minute
    ctx = context(lab.settings())
    ctx.timeout = 2.0  # what the runner sets: the attempt's time limit
    with pytest.raises(PermanentFailure, match=r"healthy \(health: starting\) within the action's"):
        docker_redeploy(redeploy_params(lab, "v2"), ctx)
    assert serves(port, "hello v1")
    assert [c.id for c in lab.client().containers.list(all=True)] == [v1.id]


def test_a_redeploy_interrupted_midway_is_picked_up(lab: Lab):
    port = free_port()
    v1 = run_v1(lab, port)
    v1.stop(timeout=1)
    v1.rename(f"helloworld-previous-{v1.id[:12]}")  # as if hookwise died right after this
    ctx = context(lab.settings())
    out = docker_redeploy(redeploy_params(lab, "v2"), ctx)
    assert out["old_image_id"] == v1.image.id
    assert "was left by an interrupted redeploy" in messages(ctx)[0]
    assert serves(port, "hello v2")
    assert [c.name for c in lab.client().containers.list(all=True)] == ["helloworld"]


def test_a_half_deployed_attempt_is_undone_then_redone(lab: Lab):
    port = free_port()
    v1 = run_v1(lab, port)
    client = lab.client()
    # As if hookwise died after starting the new container but before checking it: the new
    # one (v3, which exits) holds the name and carries this run's key, v1 is parked.
    v1.stop(timeout=1)
    v1.rename(f"helloworld-previous-{v1.id[:12]}")
    docker_pull(PullParams(image=lab.image("v3")), context(lab.settings()))
    client.containers.run(
        lab.image("v3"), name="helloworld", detach=True, labels={redeploy.KEY_LABEL: KEY}
    )
    ctx = context(lab.settings())
    out = docker_redeploy(redeploy_params(lab, "v2"), ctx)
    assert any("interrupted attempt" in line for line in messages(ctx))
    assert out["old_image_id"] == v1.image.id
    assert out["rolled_back"] is False
    assert serves(port, "hello v2")
    assert [c.name for c in client.containers.list(all=True)] == ["helloworld"]


# -- end to end -------------------------------------------------------------------------------


def test_artifactory_promotion_redeploys_through_hookwise_serve(lab: Lab, hookwise_factory):
    port = free_port()
    v1 = run_v1(lab, port)
    rules = f"""\
rules:
  - name: redeploy-helloworld
    when:
      source: artifactory
      domain: docker
      event_type: promoted
      match: {{data.image_name: helloworld, data.repo_key: docker-local-staging}}
    actions:
      - id: deploy
        uses: docker.redeploy
        with:
          container: helloworld
          image: "{lab.registry}/{{{{ artifact.image }}}}:{{{{ artifact.tag }}}}"
          stable_for: 1s
"""
    extra = (
        f"integrations:\n  docker:\n    base_url: {lab.base_url}\n    registries:\n"
        f'      "{lab.registry}":\n        username: {lab.username}\n'
        "        password: ${REGISTRY_PASSWORD}\n"
    )
    server = hookwise_factory(rules, extra=extra)
    server.env["REGISTRY_PASSWORD"] = lab.password
    server.start()
    payload = json.loads(fixture_bytes("artifactory/docker.promoted.walkthrough.json"))
    payload["data"].update(tag="v2", path="helloworld/v2/manifest.json")
    event_id = server.post(json.dumps(payload).encode()).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=60)
    assert runs[0]["status"] == "succeeded", runs
    v2 = lab.client().containers.get("helloworld")
    assert runs[0]["output"]["deploy"] == {
        "container": "helloworld",
        "container_id": v2.id,
        "image": lab.image("v2"),
        "old_image_id": v1.image.id,
        "new_image_id": v2.image.id,
        "rolled_back": False,
    }
    assert serves(port, "hello v2")
    assert lab.password not in json.dumps(server.event(event_id))
    assert not any(lab.password in line for line in server.log)


def test_settings_and_params_reject_what_could_never_work():
    with pytest.raises(ValidationError, match=r"password is empty"):
        DockerSettings.model_validate(
            {"registries": {"127.0.0.1:5000": {"username": "u", "password": ""}}}
        )
    with pytest.raises(ValidationError, match="stable_for must be shorter than timeout"):
        RedeployParams(container="web", image="web:v2", timeout=1, stable_for=5)
