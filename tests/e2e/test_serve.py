"""`hookwise serve` itself, as a process: what it says when it cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import project, run_cli


def test_unusable_store_fails_fast_with_a_message(tmp_path: Path):
    (tmp_path / "store.db").mkdir()
    config = "listen: 127.0.0.1:0\nstore: sqlite:///store.db\n"
    root = project(tmp_path, config=config)
    served = run_cli("serve", cwd=root)
    assert served.returncode != 0
    assert "hookwise cannot start: cannot open the SQLite store" in served.stderr
    listed = run_cli("events", cwd=root)
    assert listed.returncode == 1
    assert listed.stderr.startswith("error: cannot open the SQLite store")


def test_serve_explains_a_port_in_use(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--listen", f"127.0.0.1:{port}", cwd=project(tmp_path))
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
