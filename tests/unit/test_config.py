"""`load_config`: the documented defaults, paths relative to the config file, retention never
shorter than the dedupe window, durations, `${ENV}` values, and every mistake reported as
`file:line:col` with a did-you-mean where one is close."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwise.config import Config, load_config
from hookwise.errors import ConfigError

DAY = 86400.0


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, so problems name `hookwise.yaml` as `hookwise check` does."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(folder: Path, text: str) -> Config:
    (folder / "hookwise.yaml").write_text(text, encoding="utf-8")
    return load_config("hookwise.yaml")


def problems(folder: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(folder, text)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("text", ["", "{}\n", "# nothing set yet\n"])
def test_an_empty_file_gives_the_documented_defaults(here: Path, text):
    config = load(here, text)
    assert (config.listen, config.host, config.port) == ("127.0.0.1:8080", "127.0.0.1", 8080)
    assert config.store == "sqlite:///./hookwise.db"
    assert config.store_url == f"sqlite:///{here.resolve()}/hookwise.db"
    assert config.rules_path == here.resolve() / "rules"
    assert config.plugins_dir is None
    assert config.api_token is None
    assert config.allow_unauthenticated_api is False
    assert config.max_body_bytes == 1048576
    assert config.dedupe_window == 72 * 3600.0
    assert config.egress.allow == []
    assert (config.templates.timeout, config.templates.max_output) == (2.0, 1048576)
    assert (config.server.header_timeout, config.server.body_timeout) == (10.0, 30.0)
    assert config.server.max_connections == 1000
    worker = config.worker
    assert (worker.concurrency, worker.lease, worker.poll_interval) == (16, 60.0, 1.0)
    assert worker.action_timeout == 300.0
    assert (config.retention.max_age, config.retention.interval) == (30 * DAY, 3600.0)
    assert (config.sources, config.integrations) == ({}, {})


def test_relative_paths_are_resolved_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    (etc / "hookwise.yaml").write_text(
        "store: sqlite:///data/hookwise.db\nrules: rules/\nplugins_dir: plugins\n"
    )
    config = load_config(etc / "hookwise.yaml")
    root = etc.resolve()
    assert config.base_dir == root
    assert config.store_url == f"sqlite:///{root}/data/hookwise.db"
    assert config.rules_path == root / "rules"
    assert config.plugins_dir is not None
    assert config.path(config.plugins_dir) == root / "plugins"


def test_a_config_path_relative_to_the_cwd_gives_an_absolute_base(here: Path):
    (here / "conf").mkdir()
    (here / "conf" / "hookwise.yaml").write_text("rules: team/rules.yaml\n")
    config = load_config("conf/hookwise.yaml")
    assert config.rules_path == here.resolve() / "conf" / "team" / "rules.yaml"
    assert config.rules_path.is_absolute()


def test_absolute_paths_and_postgresql_urls_are_kept_as_written(here: Path):
    config = load(here, "store: sqlite:////var/lib/hookwise/h.db\nrules: /etc/hookwise/rules\n")
    assert config.store_url == "sqlite:////var/lib/hookwise/h.db"
    assert config.rules_path == Path("/etc/hookwise/rules")
    url = "postgresql://hookwise:pw@db.internal:5432/hookwise?sslmode=verify-full"
    assert load(here, f"store: '{url}'\n").store_url == url


@pytest.mark.parametrize(
    ("text", "keep_for"),
    [
        ("", 30 * DAY),
        ("retention: {max_age: 1h}\n", 72 * 3600.0),  # the docs' example: 72 hours are kept
        ("dedupe_window: 10m\nretention: {max_age: 1h}\n", 3600.0),
        ("dedupe_window: 0\nretention: {max_age: 5s}\n", 5.0),
        ("dedupe_window: 90d\n", 90 * DAY),
        ("retention: {max_age: null}\n", None),
        ("dedupe_window: 7d\nretention: {max_age: null}\n", None),
    ],
)
def test_keep_for_is_max_age_but_never_shorter_than_the_dedupe_window(here: Path, text, keep_for):
    assert load(here, text).keep_for == keep_for


def test_durations_take_a_unit_or_plain_seconds(here: Path):
    config = load(
        here,
        "dedupe_window: 250ms\n"
        "worker: {lease: 10m, poll_interval: 0.5, action_timeout: 2h}\n"
        "retention: {max_age: 3d, interval: 90}\n"
        "server: {header_timeout: 1.5s}\n",
    )
    assert config.dedupe_window == 0.25
    assert (config.worker.lease, config.worker.poll_interval) == (600.0, 0.5)
    assert config.worker.action_timeout == 7200.0
    assert (config.retention.max_age, config.retention.interval) == (3 * DAY, 90.0)
    assert config.server.header_timeout == 1.5


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (".inf", "a duration must be a finite number of seconds >= 0, got inf"),
        ("-5", "a duration must be a finite number of seconds >= 0, got -5"),
        ("true", "expected a duration such as 30s, 10m, 2h or 1d"),
        ("5 minutes", "expected a duration such as 30s, 10m, 2h or 1d, got '5 minutes'"),
        ("10M", "expected a duration such as 30s, 10m, 2h or 1d, got '10M'"),
        ("0", "Input should be greater than 0"),
    ],
)
def test_a_bad_duration_is_reported_at_its_value(here: Path, written, message):
    assert problems(here, f"worker:\n  lease: {written}\n") == [
        f"hookwise.yaml:2:10: [error] worker.lease: {message}"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "server:\n  max_connection: 5\n",
            "hookwise.yaml:2:3: [error] server.max_connection: unknown key 'max_connection'; "
            "did you mean 'max_connections'?",
        ),
        (
            "templates:\n  timout: 1s\n",
            "hookwise.yaml:2:3: [error] templates.timout: unknown key 'timout'; "
            "did you mean 'timeout'?",
        ),
        (
            "listen: 127.0.0.1:8080\negress: {allowed: [10.0.0.0/8]}\n",
            "hookwise.yaml:2:10: [error] egress.allowed: unknown key 'allowed'; "
            "did you mean 'allow'?",
        ),
    ],
)
def test_an_unknown_key_is_reported_at_the_key_with_the_close_known_key(here: Path, text, expected):
    assert problems(here, text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "colour: red\n",
            "hookwise.yaml:1:1: [error] colour: unknown key 'colour'; allowed keys: listen, "
            "store, rules, plugins_dir, api_token, access, public_url, allow_unauthenticated_api, "
            "max_body_bytes, dedupe_window, body_dedupe_window, egress, worker, retention, "
            "templates, server, sources, integrations",
        ),
        (
            "worker:\n  threads: 4\n",
            "hookwise.yaml:2:3: [error] worker.threads: unknown key 'threads'; allowed keys: "
            "concurrency, processes, lease, poll_interval, action_timeout",
        ),
    ],
)
def test_an_unknown_key_with_no_close_match_lists_the_allowed_keys(here: Path, text, expected):
    assert problems(here, text) == [expected]


def test_base_dir_written_in_the_file_is_reported_as_an_unknown_key(here: Path):
    [problem] = problems(here, "base_dir: /etc/hookwise\n")
    assert problem.startswith("hookwise.yaml:1:1: [error] base_dir: unknown key 'base_dir'")


def test_env_references_supply_secrets_and_typed_settings(
    here: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HW_API_TOKEN", "tok-s3cr3t")
    monkeypatch.setenv("HW_EU_SECRET", "eu-s3cr3t")
    monkeypatch.delenv("HW_MAX_BODY", raising=False)
    monkeypatch.delenv("HW_OPEN_API", raising=False)
    config = load(
        here,
        "api_token: ${HW_API_TOKEN}\n"
        "max_body_bytes: ${HW_MAX_BODY:-2048}\n"
        "allow_unauthenticated_api: ${HW_OPEN_API:-false}\n"
        "sources:\n  eu:\n    kind: artifactory\n    secret: ${HW_EU_SECRET}\n",
    )
    assert config.api_token is not None
    assert config.api_token.get_secret_value() == "tok-s3cr3t"
    assert "tok-s3cr3t" not in repr(config) and str(config.api_token) == "**********"
    assert config.max_body_bytes == 2048
    assert config.allow_unauthenticated_api is False
    assert config.sources["eu"].kind == "artifactory"
    assert config.sources["eu"].model_extra == {"secret": "eu-s3cr3t"}


def test_an_unset_variable_is_reported_before_the_keys_are_checked(
    here: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("HW_UNSET_TOKEN", raising=False)
    assert problems(here, "colour: red\napi_token: ${HW_UNSET_TOKEN}\n") == [
        "hookwise.yaml:2:12: [error] environment variable HW_UNSET_TOKEN is not set; "
        "export it or write ${HW_UNSET_TOKEN:-default}"
    ]


def test_a_duplicate_key_is_reported_before_the_values_are_checked(here: Path):
    assert problems(here, "listen: bad\nworker: {}\nlisten: 127.0.0.1:1\n") == [
        "hookwise.yaml:3:1: [error] listen: duplicate key 'listen' (first defined on line 1); "
        "remove one of them"
    ]


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("'[::]:8080'", "::", 8080), ("0.0.0.0:9000", "0.0.0.0", 9000), ("host:65535", "host", 65535)],
)
def test_listen_is_split_into_host_and_port(here: Path, listen, host, port):
    config = load(here, f"listen: {listen}\n")
    assert (config.host, config.port) == (host, port)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("'localhost:65536'", "'localhost:65536'"),
        ("':8080'", "':8080'"),
        ("localhost", "'localhost'"),
        ("'127.0.0.1:'", "'127.0.0.1:'"),
        ("127.0.0.1:http", "'127.0.0.1:http'"),
        ("'127.0.0.1:-1'", "'127.0.0.1:-1'"),
        ("null", "'None'"),
    ],
)
def test_a_bad_listen_value_is_reported_with_what_was_written(here: Path, written, shown):
    assert problems(here, f"worker: {{}}\nlisten: {written}\n") == [
        f"hookwise.yaml:2:9: [error] listen: expected host:port such as 127.0.0.1:8080, got {shown}"
    ]


def test_a_listen_port_in_superscript_digits_gets_the_host_port_message(here: Path):
    assert problems(here, "listen: '127.0.0.1:²'\n") == [
        "hookwise.yaml:1:9: [error] listen: expected host:port such as 127.0.0.1:8080, "
        "got '127.0.0.1:²'"
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [("# settings\n- listen\n", "2:1"), ("just text\n", "1:1"), ("\n\n[1, 2]\n", "3:1")],
)
def test_a_file_that_is_not_a_mapping_is_refused_at_its_content(here: Path, text, where):
    assert problems(here, text) == [
        f"hookwise.yaml:{where}: [error] the config file must be a mapping of settings"
    ]


def test_every_validation_problem_is_reported_at_once_sorted_by_position(here: Path):
    text = "worker:\n  lease: 0\nlisten: bad\nmax_body_bytes: 0\nstore: 'mysql://db/hookwise'\n"
    assert problems(here, text) == [
        "hookwise.yaml:2:10: [error] worker.lease: Input should be greater than 0",
        "hookwise.yaml:3:9: [error] listen: expected host:port such as 127.0.0.1:8080, got 'bad'",
        "hookwise.yaml:4:17: [error] max_body_bytes: Input should be greater than 0",
        "hookwise.yaml:5:8: [error] store: unsupported store 'mysql': use "
        "sqlite:///path/to/hookwise.db or postgresql://user:password@host:5432/database",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources:\n  eu:\n    secret: x\n",
            "hookwise.yaml:3:5: [error] sources.eu.kind: required key is missing",
        ),
        (
            "sources: [eu]\n",
            "hookwise.yaml:1:10: [error] sources: Input should be a valid dictionary, got ['eu']",
        ),
        (
            "egress:\n  allow: 10.0.0.0/8\n",
            "hookwise.yaml:2:10: [error] egress.allow: Input should be a valid list, "
            "got '10.0.0.0/8'",
        ),
        (
            "templates:\n  max_output: 100\n",
            "hookwise.yaml:2:15: [error] templates.max_output: Input should be greater than "
            "or equal to 1024",
        ),
        (
            "worker:\n  concurrency: 0\n",
            "hookwise.yaml:2:16: [error] worker.concurrency: Input should be greater than "
            "or equal to 1",
        ),
    ],
)
def test_a_value_of_the_wrong_shape_is_reported_at_the_value(here: Path, text, expected):
    assert problems(here, text) == [expected]


def test_a_missing_config_file_is_a_config_error_at_line_one(here: Path):
    with pytest.raises(ConfigError) as caught:
        load_config("missing.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"{here / 'missing.yaml'}:1:1: [error] cannot read the config: no such file; pass "
        "--config PATH or run hookwise in the folder that holds hookwise.yaml"
    ]


def test_a_config_file_that_is_not_utf8_is_a_config_error(here: Path):
    (here / "hookwise.yaml").write_bytes(b"listen: 127.0.0.1:8080\napi_token: '\xff'\n")
    with pytest.raises(ConfigError) as caught:
        load_config("hookwise.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "hookwise.yaml:2:1: [error] the file is not UTF-8 text; save it as UTF-8"
    ]


def test_a_control_character_in_the_config_is_a_config_error(here: Path):
    [problem] = problems(here, "listen: 127.0.0.1:8080\napi_token: 'a\x1bb'\n")
    assert problem.startswith("hookwise.yaml:2:")
