"""Running rule test cases through the real pipeline, without side effects.

Each case gets a throwaway SQLite store and its own clock: its earlier deliveries and
then its event are normalized, matched and accepted exactly as `serve` would (flow
control included), and nothing runs. Senders' signatures are not verified: a test file
holds no secrets. Then the expectations are compared with what happened.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hookwise import clock
from hookwise.engine import Engine
from hookwise.errors import ConfigError, Problem, RequestError
from hookwise.event import Event, new_id
from hookwise.rules.loader import RULE_SUFFIXES, display_path
from hookwise.service import Hookwise
from hookwise.sources import Delivery
from hookwise.store import FlowKeys, RunDetail, open_store
from hookwise.suites import model
from hookwise.validation import problems_from
from hookwise.versions import policy_refusals
from hookwise.yamlpos import Document, load_file

# A case without `at` happens at this moment, so relative windows read the same each run.
EPOCH = 1_800_000_000.0


@dataclass
class CaseResult:
    file: str
    line: int
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def suite_files(path: Path) -> list[Path]:
    if path.is_file():
        return [display_path(path)]
    found = sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
    return [display_path(p) for p in found]


async def run_suites(service: Hookwise, paths: list[Path]) -> list[CaseResult]:
    """Every case of every file; raises ConfigError listing every malformed file."""
    suites: list[tuple[Path, Document, model.SuiteFile]] = []
    problems: list[Problem] = []
    for path in paths:
        doc = load_file(str(path))
        problems.extend(doc.problems)
        if doc.problems:
            continue
        try:
            suites.append((path, doc, model.SuiteFile.model_validate(doc.data)))
        except ValidationError as exc:
            problems.extend(problems_from(exc, doc, model.SuiteFile))
    if problems:
        raise ConfigError(problems)
    results = []
    for path, doc, suite in suites:
        for index, case in enumerate(suite.tests):
            line = doc.value_pos.get(("tests", index), (1, 1))[0]
            result = CaseResult(str(path), line, case.name)
            try:
                result.failures = await _run_case(service, path.parent, case)
            except CaseError as exc:
                result.failures = [str(exc)]
            results.append(result)
    return results


class CaseError(Exception):
    """The case cannot be run as written (a missing fixture, an unknown source)."""


async def _run_case(service: Hookwise, folder: Path, case: model.Case) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="hookwise-test-") as scratch:
        store = open_store(f"sqlite:///{scratch}/cases.db")
        await store.open()
        try:
            engine = Engine(
                service.config,
                service.engine.sources,
                service.engine.actions,
                service.engine.templates,
                store,
                service.engine.rules,
            )
            for earlier in case.before:
                await _deliver(engine, folder, earlier, case.source)
            event_id = await _deliver(engine, folder, case, case.source)
            event = await store.get_event(event_id)
            assert event is not None
            runs = await store.runs_of(event_id)
            verdicts = engine.explain(event)
            keys = {run.rule: run.keys for run in engine.plan(event)}
        finally:
            await store.close()
    return _compared(case.expect, verdicts, runs, keys)


async def _deliver(
    engine: Engine, folder: Path, delivery: model.Delivery, default_source: str | None
) -> str:
    source = delivery.source or default_source
    if source is None:
        raise CaseError("source: say which configured source the event comes from")
    if source not in engine.sources:
        known = ", ".join(sorted(engine.sources)) or "none"
        raise CaseError(f"source: no source {source!r} is configured (configured: {known})")
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    at = delivery.at.replace(tzinfo=delivery.at.tzinfo or UTC).timestamp() if delivery.at else EPOCH
    with _clock_at(at):
        if delivery.stored is not None:
            return await _admit(engine, _exported(folder / delivery.stored, source, at))
        try:
            [result, *_] = await engine.receive(
                source, Delivery(headers, _body(folder, delivery)), verify=False
            )
        except RequestError as exc:
            raise CaseError(f"the source refused the event ({exc.reason}): {exc}") from None
    return result.event_id


def _exported(path: Path, source: str, at: float) -> Event:
    """The event `hookwise events export` wrote, received again now."""
    try:
        fields = json.loads(path.read_text())
        return Event(
            new_id(), source, fields["kind"], fields["domain"], fields["event_type"],
            fields.get("delivery_id"), at, fields["data"], fields.get("headers") or {},
            fields.get("artifacts") or [],
        )  # fmt: skip
    except OSError as exc:
        raise CaseError(f"stored: cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CaseError(f"stored: {path} is not an exported event ({exc})") from None


async def _admit(engine: Engine, event: Event) -> str:
    """Store an already normalized event with the runs the rules plan for it."""
    runs, awaited = engine.plan(event), engine.awaited(event)
    result = await engine.store.accept(event, f"test:{event.id}", 0, runs, awaited)
    return result.event_id


def _body(folder: Path, delivery: model.Delivery) -> bytes:
    if delivery.event is not None:
        fixture = folder / delivery.event
        try:
            return fixture.read_bytes()
        except OSError as exc:
            raise CaseError(f"event: cannot read {fixture}: {exc.strerror}") from None
    body = delivery.body
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


@contextlib.contextmanager
def _clock_at(moment: float) -> Iterator[None]:
    """Flow control reads `clock.now`: the case's delivery happens at its own moment."""
    real = clock.now
    clock.now = lambda: moment
    try:
        yield
    finally:
        clock.now = real


def _compared(
    expect: model.Expect,
    verdicts: list[dict[str, Any]],
    runs: list[RunDetail],
    keys: dict[str, FlowKeys],
) -> list[str]:
    by_rule = {verdict["rule"]: verdict for verdict in verdicts}
    failures = []
    named = [*expect.match, *expect.no_match, *expect.miss, *expect.params, *expect.runs]
    for rule in [*named, *expect.policy]:
        if rule not in by_rule:
            failures.append(f"rule {rule}: no rule of that name is loaded")
    for rule in expect.match:
        verdict = by_rule.get(rule)
        if verdict and not verdict["matched"]:
            failures.append(f"rule {rule}: expected to match, but {verdict['reason']}")
    for rule in expect.no_match:
        verdict = by_rule.get(rule)
        if verdict and verdict["matched"]:
            failures.append(f"rule {rule}: expected not to match, but it matched")
    for rule, reason in expect.miss.items():
        verdict = by_rule.get(rule)
        if verdict and (verdict["matched"] or reason not in verdict["reason"]):
            got = "it matched" if verdict["matched"] else f"the reason is: {verdict['reason']}"
            failures.append(f"rule {rule}: expected to miss because of {reason!r}, but {got}")
    failures += _params(expect, by_rule)
    failures += _runs(expect, runs, keys)
    failures += _policies(expect, by_rule)
    return failures


def _policies(expect: model.Expect, by_rule: dict[str, dict[str, Any]]) -> list[str]:
    """Each expected verdict against the one the action's rendered `policy` gives."""
    failures = []
    for rule, labels in expect.policy.items():
        actions = {a["action"]: a for a in (by_rule.get(rule) or {}).get("actions", [])}
        for label, wanted in labels.items():
            params = (actions.get(label) or {}).get("params")
            if params is None:
                failures.append(f"rule {rule}: no rendered action {label!r} to judge")
                continue
            refusals = policy_refusals(params, wanted.current)
            if refusals is None:
                failures.append(f"rule {rule}, {label}: the action has no policy")
                continue
            deploys, said = not refusals, "; ".join(refusals)
            if deploys != wanted.deploys or (wanted.reason and wanted.reason not in said):
                got = "deploys" if deploys else f"is skipped: {said}"
                expected = "to deploy" if wanted.deploys else "a skip"
                failures.append(f"rule {rule}, {label}: expected {expected}, but it {got}")
    return failures


def _params(expect: model.Expect, by_rule: dict[str, dict[str, Any]]) -> list[str]:
    failures = []
    wanted = {
        (rule, label, "params"): value
        for rule, labels in expect.params.items()
        for label, value in labels.items()
    }
    wanted |= {
        (rule, label, "error"): value
        for rule, labels in expect.render_error.items()
        for label, value in labels.items()
    }
    for (rule, label, kind), value in wanted.items():
        verdict = by_rule.get(rule)
        if verdict is None:
            continue
        actions = {action["action"]: action for action in verdict.get("actions", [])}
        if not verdict["matched"]:
            failures.append(f"rule {rule}: did not match, so {label} gets nothing")
        elif label not in actions:
            known = ", ".join(actions) or "none"
            failures.append(f"rule {rule}: no action {label!r} (its actions: {known})")
        elif kind == "error":
            error = actions[label].get("error")
            if not error or value not in error:
                failures.append(
                    f"rule {rule}, {label}: expected a render error with {value!r}, "
                    f"got {error or 'no error'}"
                )
        else:
            got = actions[label].get("params")
            if got is None:
                failures.append(f"rule {rule}, {label}: {actions[label].get('error')}")
            elif not _contains(got, value):
                failures.append(
                    f"rule {rule}, {label}: parameters differ\n" + _diff(_subset(got, value), value)
                )
    return failures


def _runs(expect: model.Expect, runs: list[RunDetail], keys: dict[str, FlowKeys]) -> list[str]:
    failures = []
    found = {detail.run.rule: detail for detail in runs}
    for rule, wanted in expect.runs.items():
        detail = found.get(rule)
        if detail is None:
            failures.append(f"rule {rule}: expected a run, but the event has none of it")
            continue
        run = detail.run
        rendered = keys.get(rule)
        got = {
            "status": str(run.status),
            "batch": len(detail.events),
            "approval": "approval" in run.spec,
            "keys": {k: v for k, v in vars(rendered).items() if v is not None} if rendered else {},
        }
        for name, value in wanted.model_dump(exclude_none=True).items():
            if got[name] != value:
                failures.append(f"rule {rule}: run {name} is {got[name]!r}, expected {value!r}")
    return failures


def _contains(got: Any, wanted: Any) -> bool:
    """`wanted` is a subset of `got`: mappings by key, everything else by equality."""
    if isinstance(wanted, dict):
        return isinstance(got, dict) and all(
            key in got and _contains(got[key], value) for key, value in wanted.items()
        )
    return bool(got == wanted)


def _subset(got: Any, wanted: Any) -> Any:
    """What of `got` the expectation talks about, for a readable diff."""
    if isinstance(wanted, dict) and isinstance(got, dict):
        return {key: _subset(got.get(key), value) for key, value in wanted.items()}
    return got


def _diff(got: Any, wanted: Any) -> str:
    import difflib

    lines = difflib.unified_diff(
        json.dumps(wanted, indent=2, sort_keys=True, default=str).splitlines(),
        json.dumps(got, indent=2, sort_keys=True, default=str).splitlines(),
        "expected",
        "rendered",
        lineterm="",
    )
    return "\n".join(f"    {line}" for line in lines)
