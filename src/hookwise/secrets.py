"""The secrets hookwise knows, and the masking that keeps them out of everything it shows.

Secrets are the values of SecretStr settings (source tokens, integration passwords,
`api_token`, a store password) and of the environment variables rules reference as
`${VAR}`. They are registered here when the config and rules load, and masked
wherever text leaves hookwise: run history, API answers and the process log, whose
every line (third-party loggers' too) passes `mask`.

A secret comes back in other forms than it went out in, and each is masked:

- percent-encoded, whichever characters the client chose to leave alone (httpx keeps
  `/`), with `+` for a space, and percent-encoded again;
- JSON-escaped (`\\"`, `\\u00e9`, `\\/`), as a downstream echoing the request writes it,
  escaped again, or percent-encoded after;
- HTML-escaped (`&quot;`, `&#34;`, `&#x22;`), as an error page shows it;
- inside base64, as in `Authorization: Basic <user:password>` (UTF-8 or Latin-1, wrapped
  at 76 columns or not): the whole token goes;
- cut off: `excerpt` masks before it cuts, and the start of a secret before an ellipsis
  or at the very end of a text (a plugin that cut first) is masked too.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
# Shorter values are not secrets worth the name, and masking them everywhere would
# mangle every log line (a one-letter "secret" masks every such letter). A run still
# masks its own short `${VAR}` values, as written (`mask(text, also=...)`).
MIN_LENGTH = 4
# What JSON writes after a backslash for these; the backslash may be doubled (escaped
# again) or percent-encoded (%5C).
_SHORT_ESCAPES = {'"': '"', "\\": "\\\\", "/": "/", "\n": "n", "\t": "t", "\r": "r"}
_BACKSLASHES = r"(?:\\|%(?:25)*5[cC])+"
_HTML_NAMES = {"&": "amp", '"': "quot", "'": "(?:apos|#39)", "<": "lt", ">": "gt"}
# Base64 as mail and PEM write it may break lines every 76 characters.
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{4,}(?:\r?\n[A-Za-z0-9+/_-]+)*={0,2}")
_ELLIPSES = ("…", "...")
# A cut-off secret: at least this much of its start before an ellipsis is masked.
CUT_MIN = 6


def _any_case(hex_digits: str) -> str:
    """`2f` matches `2f` and `2F`."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in hex_digits)


def _percent(char: str) -> str:
    """`%2F`, and `%252F` when encoded twice (or more)."""
    return "".join("%(?:25)*" + _any_case(f"{b:02x}") for b in char.encode())


def _char(char: str) -> str:
    """Every way one character of a secret may be written in a response, a URL or a page."""
    code = ord(char)
    units = [code]
    if code >= 0x10000:  # JSON writes it as a surrogate pair
        units = [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
    unicode_escape = "".join(_BACKSLASHES + "u" + _any_case(f"{u:04x}") for u in units)
    html = f"&#0*{code};|&#[xX]0*{_any_case(f'{code:x}')};"
    forms = [re.escape(char), _percent(char), unicode_escape, html]
    if char in _SHORT_ESCAPES:
        escaped = _SHORT_ESCAPES[char]
        forms.append(_BACKSLASHES + f"(?:{re.escape(escaped)}|{_percent(escaped)})")
    if char in _HTML_NAMES:
        forms.append(f"&{_HTML_NAMES[char]};")
    if char == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")"


def _pattern(secret: str) -> str:
    return "".join(_char(c) for c in secret)


def _base64_cores(secret: str) -> list[str]:
    """The part of base64(…secret…) that depends on the secret alone, at each alignment,
    for the secret in UTF-8 and (requests' Basic auth) Latin-1."""
    cores = []
    for encoding in ("utf-8", "latin-1"):
        try:
            cores += _cores_of(secret.encode(encoding))
        except UnicodeEncodeError:
            continue
    return list(dict.fromkeys(cores))


def _cores_of(raw: bytes) -> list[str]:
    cores = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw + b"\0\0").decode()
        first = -(-pad * 8 // 6)  # the first character made only of the secret's bits
        last = (pad + len(raw)) * 8 // 6  # one past the last such character
        core = encoded[first:last]
        if len(core) >= 6:
            cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


class Secrets:
    """A set of secret values and the compiled masks for them; safe to share by threads."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._regex: re.Pattern[str] | None = None
        self._cores: tuple[str, ...] = ()
        self._cut: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Remember more secrets; values shorter than MIN_LENGTH are left out."""
        fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
        with self._lock:
            if fresh <= self._values:
                return
            known = self._values | fresh
            ordered = sorted(known, key=len, reverse=True)  # no part of a longer one survives
            self._regex = re.compile("|".join(_pattern(v) for v in ordered))
            self._cores = tuple(c for v in ordered for c in _base64_cores(v))
            self._cut = _cut_pattern(ordered)
            self._values = known

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def mask(self, text: str, also: Sequence[str] = ()) -> str:
        """`text` with every known secret, in any of its forms, replaced by `***`; and
        the values in `also` (short ones, say), as written."""
        for value in sorted(also, key=len, reverse=True):
            if value:
                text = text.replace(value, MASK)
        regex, cores, cut = self._regex, self._cores, self._cut
        if regex is None or not text:
            return text
        text = regex.sub(MASK, text)
        if cores:
            text = _BASE64_TOKEN.sub(lambda m: MASK if _holds(m[0], cores) else m[0], text)
        return cut.sub(MASK, text) if cut is not None else text

    def redact(self, value: Any, also: Sequence[str] = ()) -> Any:
        """Mask inside every string of a JSON-able value; numbers and keys stay intact."""
        if isinstance(value, str):
            return self.mask(value, also)
        if isinstance(value, dict):
            return {
                self.mask(key, also) if isinstance(key, str) else key: self.redact(item, also)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact(item, also) for item in value]
        return value


def _holds(token: str, cores: Sequence[str]) -> bool:
    joined = token.replace("\r", "").replace("\n", "")
    return any(core in joined for core in cores)


def _cut_pattern(secrets: Sequence[str]) -> re.Pattern[str] | None:
    """The start of a secret (at least CUT_MIN characters, and more than half of it),
    where a text was cut: before an ellipsis, or at the very end."""
    starts = [
        re.escape(secret[:length])
        for secret in secrets
        for length in range(len(secret) - 1, max(CUT_MIN, len(secret) // 2 + 1) - 1, -1)
    ]
    if not starts:
        return None
    ends = "|".join(re.escape(e) for e in _ELLIPSES)
    return re.compile(f"(?:{'|'.join(starts)})(?=(?:{ends})|\\s*$)")


def secret_values(value: Any) -> list[str]:
    """Every SecretStr inside a settings model (or dict, or list)."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()] if value.get_secret_value() else []
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in secret_values(getattr(value, name))]
    if isinstance(value, dict):
        return [s for item in value.values() for s in secret_values(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in secret_values(item)]
    return []


# The process's secrets: filled as the config and rules load, read by every mask.
known = Secrets()


def mask(text: str) -> str:
    """`text` with every secret hookwise knows masked."""
    return known.mask(text)


def excerpt(text: str, limit: int) -> str:
    """The start of `text` for a message: masked first, then cut, so no half secret shows."""
    masked = known.mask(text)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"
