"""Where events and runs live. `open_store` picks the backend from the config's URL."""

from __future__ import annotations

from hookwise.store.base import AcceptResult, AttemptRecord, NewRun, RunRecord, Store

__all__ = ["AcceptResult", "AttemptRecord", "NewRun", "RunRecord", "Store", "open_store"]


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from hookwise.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    scheme = url.partition(":")[0]
    raise ValueError(f"unsupported store {scheme!r}: use sqlite:///path/to/hookwise.db")
