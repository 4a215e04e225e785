"""Rules reload on file change and SIGHUP; a bad edit keeps the old rules running."""

from __future__ import annotations

import json
import signal

from tests.conftest import Hookwise, wait_until

GOOD = """\
rules:
  - name: announce
    when: {source: artifactory, domain: docker}
    actions:
      - uses: log
        with: {message: "v1 {{ data.tag }}"}
"""


def send(server: Hookwise, tag: str) -> list[dict]:
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": {"tag": tag}})
    event_id = server.post(body.encode()).json()["event_id"]
    return server.wait_for_runs(event_id, {"succeeded", "dead"})


def test_bad_edit_keeps_old_rules_and_good_edit_applies(hookwise_factory):
    server = hookwise_factory(GOOD).start()
    assert send(server, "a")[0]["log"][0]["message"] == "v1 a"

    # Three mistakes in one edit: the service must log them all and keep running v1.
    server.write_rules(GOOD.replace("source:", "sorce:").replace("uses: log", "uses: lgo"))
    wait_until(lambda: any("rules not reloaded" in line for line in server.log), timeout=15)
    logged = "\n".join(server.log)
    assert "unknown key 'sorce'; did you mean 'source'?" in logged
    assert "unknown action 'lgo'; did you mean 'log'?" in logged
    assert "rules.yaml:3:" in logged
    assert send(server, "b")[0]["log"][0]["message"] == "v1 b"

    server.write_rules(GOOD.replace("v1", "v2"))
    wait_until(lambda: any("rules reloaded" in line for line in server.log), timeout=15)
    assert send(server, "c")[0]["log"][0]["message"] == "v2 c"


def test_sighup_reloads(hookwise_factory):
    server = hookwise_factory(GOOD).start()
    server.write_rules(GOOD.replace("v1", "v3"), name="more.yaml")
    # Both files now define `announce`: the reload is refused, naming both places.
    wait_until(lambda: any("already used at" in line for line in server.log), timeout=15)
    (server.root / "rules" / "more.yaml").unlink()
    server.log.clear()
    server.signal(signal.SIGHUP)
    wait_until(lambda: any("rules reloaded: 1 rules" in line for line in server.log), timeout=15)
    assert send(server, "d")[0]["log"][0]["message"] == "v1 d"


def test_watcher_survives_a_file_it_cannot_read(hookwise_factory):
    server = hookwise_factory(GOOD).start()
    (server.root / "rules" / "latin1.yaml").write_bytes("rules: [caf\xe9]\n".encode("latin-1"))
    wait_until(lambda: any("not UTF-8" in line for line in server.log), timeout=15)
    server.log.clear()
    (server.root / "rules" / "latin1.yaml").unlink()
    wait_until(lambda: any("rules reloaded" in line for line in server.log), timeout=15)
    server.log.clear()
    server.write_rules(GOOD.replace("v1", "v4"))
    wait_until(lambda: any("rules reloaded" in line for line in server.log), timeout=15)
    assert send(server, "e")[0]["log"][0]["message"] == "v4 e"


# Nine levels of nine aliases: 600 bytes that name 9^9 values.
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [" + ", ".join([f"*{a}"] * 9) + "]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_hostile_rule_file_is_refused_while_the_service_runs_on(hookwise_factory):
    server = hookwise_factory(GOOD).start()
    assert send(server, "a")[0]["log"][0]["message"] == "v1 a"
    assert server.process is not None
    before = rss_kib(server.process.pid)
    server.write_rules(LAUGHS, name="laughs.yaml")
    wait_until(lambda: any("YAML too large" in line for line in server.log), timeout=15)
    assert "laughs.yaml:" in "\n".join(server.log)
    assert send(server, "b")[0]["log"][0]["message"] == "v1 b"  # the old rules still run
    assert server.get("/healthz").json()["rules"] == 1
    assert rss_kib(server.process.pid) - before < 50 * 1024  # far from a billion values


CI_SOURCE = (
    "  ci:\n    kind: generic\n    domain: {value: docker}\n    token: a-long-ci-token-123\n"
)


def test_config_edits_apply_sources_and_name_what_needs_a_restart(hookwise_factory):
    server = hookwise_factory(GOOD.replace("source: artifactory", "source: '*'")).start()
    assert server.http.post("/hooks/ci", json={}).status_code == 404  # not configured yet

    edited = server.config.read_text().replace("worker:\n", "worker:\n  concurrency: 3\n", 1)
    server.config.write_text(edited + CI_SOURCE)
    wait_until(lambda: any("reloaded: sources artifactory, ci" in line for line in server.log))
    assert any(
        line.endswith("worker changed; restart hookwise to apply (only sources apply at once)")
        for line in server.log
    )
    accepted = server.http.post(
        "/hooks/ci",
        json={"type": "pushed", "tag": "e"},
        headers={"Authorization": "Bearer a-long-ci-token-123"},
    )
    assert accepted.status_code == 202, accepted.text
    [run] = server.wait_for_runs(accepted.json()["event_id"], {"succeeded"})
    assert run["log"][0]["message"] == "v1 e"

    server.config.write_text(server.config.read_text() + "  broken: {kind: nope}\n")
    wait_until(
        lambda: any("not reloaded, keeping the configuration" in line for line in server.log)
    )
    assert any("unknown source kind 'nope'" in line for line in server.log)
    assert server.http.post("/hooks/ci", json={}).status_code == 401  # still served
