"""Which store backends to run, a fresh store for each hookwise process, and its size.

SQLite always runs. A PostgreSQL URL runs only if this hookwise accepts it (the
backend is developed separately) and its server answers; otherwise the report says
it was skipped and why, instead of failing the run. Each hookwise process gets an
empty store of its own: a new SQLite file, or a new database created through the
given URL and dropped afterwards, so runs neither see nor leave each other's events.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from hookwise.config import Config
from hookwise.store import open_store

DEFAULT_POSTGRESQL = "postgresql://127.0.0.1:5432/test"


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'hookwise.db').resolve()}"


def unusable(url: str) -> str | None:
    """Why hookwise cannot use the store at `url` here, or None when it can."""
    try:
        Config.model_validate({"store": url})
        open_store(url)
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return f"this hookwise has no backend for it ({first})"
    if url.startswith("sqlite:"):
        return None
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 3):
            return None
    except OSError as exc:
        return f"its server does not answer at {parts.hostname}:{parts.port}: {exc}"


@contextlib.contextmanager
def fresh(store: str, folder: Path) -> Iterator[str]:
    """An empty store: `store` is "sqlite" or a PostgreSQL URL to create databases through."""
    if store == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield sqlite_url(folder)  # removed with the run's temporary folder
        return
    import psycopg  # the PostgreSQL backend's driver, there when the backend is

    name = f"hookwise_bench_{os.urandom(6).hex()}"
    with psycopg.connect(store, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(store)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(store, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def size_bytes(url: str) -> int:
    """Bytes on disk: the SQLite file with its WAL and shared memory, or the database."""
    if not url.startswith("sqlite:///"):
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
    path = Path(url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(file.stat().st_size for file in files if file.exists())
