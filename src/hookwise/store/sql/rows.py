"""Rows to records: the same names, JSON columns decoded."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from hookwise.event import Event
from hookwise.status import RunStatus
from hookwise.store.records import (
    AttemptRecord,
    RunRecord,
)
from hookwise.store.sql.common import (
    Row,
)

R = TypeVar("R")


_FIELDS: dict[type, frozenset[str]] = {}


def _names(cls: Any) -> frozenset[str]:
    """A record class's field names, looked up once rather than per row."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def load(cls: type[R], row: Row, *json_columns: str) -> R:
    """A record dataclass from a row: same names, JSON columns decoded."""
    values = {key: row[key] for key in _names(cls).intersection(row.keys())}
    for column in json_columns:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    return cls(**values)


def event_from(row: Row) -> Event:
    return load(Event, row, "data", "headers", "artifacts", "meta")


def run_record(row: Row) -> RunRecord:
    record = load(RunRecord, row, "spec", "outputs", "flow")
    record.status = RunStatus(record.status)
    return record


def attempt_from(row: Row) -> AttemptRecord:
    return load(AttemptRecord, row, "output", "log")
