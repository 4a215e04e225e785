"""Named tokens for tests of the API and the console: one operator, one viewer."""

from __future__ import annotations

OPERATOR = "op-token-0123456789abcdef"
VIEWER = "view-token-0123456789abcdef"
ACCESS = f"""access:
  - {{name: olivia, role: operator, token: "{OPERATOR}"}}
  - {{name: victor, role: viewer, token: "{VIEWER}"}}
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
