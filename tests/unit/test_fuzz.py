"""Fuzzing: nothing a sender can send causes a 5xx or an unhandled exception.

Two layers, each with hypothesis:

- every source kind's `verify` and `normalize`, called directly with random bodies and
  headers: they either accept, or raise a RequestError (a 4xx) and nothing else, and
  what they accept can be stored and shown back as JSON;
- the whole HTTP surface through the ASGI app (the receiver, Slack's endpoints with
  valid signatures, `/api/*` with and without the token): no answer is a 5xx.

The number of examples is bounded by the hypothesis profile (conftest.py): `ci` is what
`.ci/run` runs, `deep` is for a longer session (HYPOTHESIS_PROFILE=deep).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.from_thread
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookwise.app import create_app
from hookwise.config import BoundSource
from hookwise.errors import RequestError
from hookwise.event import Event
from hookwise.plugins import load_registry
from hookwise.service import build_service
from hookwise.sources import Delivery
from tests.asgi import (
    API_TOKEN,
    RULES,
    SIGNING_SECRET,
    SOURCES,
    SW_SECRET,
    sign_standard,
    slack_headers,
)
from tests.conftest import FIXTURES, SECRET, project

# -- strategies ---------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
FIXTURE_BODIES = sorted(p.read_text() for p in FIXTURES.glob("*/*.json"))
# Header values as HTTP carries them: latin-1, no line breaks.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
HEADER_NAMES = [
    "content-type",
    "authorization",
    "x-jfrog-event-auth",
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-subject",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-github-event",
    "x-hub-signature-256",
    "x-shared",
]
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "text/plain; charset=utf-8",
        "text/plain; charset=latin-1",
        "text/plain; charset=idna",
        "application/octet-stream",
        "",
    ]
)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    """A real delivery with parts replaced: reaches deep into normalize."""
    document = json.loads(draw(st.sampled_from(FIXTURE_BODIES)))
    target = document
    for _ in range(draw(st.integers(0, 3))):
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            if draw(st.booleans()) and isinstance(target[key], dict | list):
                target = target[key]
                continue
            target[key] = draw(JSON)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(JSON)
    return json.dumps(document).encode()


BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda value: json.dumps(value).encode()),
    mutated_fixture(),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [b'["\\ud800"]', b'{"a": NaN}', b"[" * 200, b'{"a": 1e999}', b"\xef\xbb\xbf{}", b""]
    ),
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(HEADER_NAMES) | HEADER_TEXT.filter(_token), max_size=6))
    found = {name.lower(): draw(HEADER_TEXT) for name in names}
    found["content-type"] = draw(CONTENT_TYPES)
    return found


def _token(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)


# -- verify + normalize, directly -------------------------------------------------------

KIND_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "artifactory": [{"allow_unauthenticated": True}, {"secret": "s3cret", "signed": True}],
    "harbor": [{"allow_unauthenticated": True}],
    "cloudevents": [
        {"allow_unauthenticated": True},
        {"allow_unauthenticated": True, "envelope": True},
    ],
    "standard-webhooks": [{"allow_unauthenticated": True}, {"secret": SW_SECRET}],
    "generic": [
        {"allow_unauthenticated": True},
        {
            "allow_unauthenticated": True,
            "domain": {"path": "kind"},
            "event_type": {"header": "X-GitHub-Event", "default": "x"},
            "delivery_id": {"path": "id"},
            "data": "payload",
        },
        {"hmac": {"header": "X-Hub-Signature-256", "secret": "k", "prefix": "sha256="}},
    ],
}
KINDS = load_registry().sources


def bound(kind: str, options: dict[str, Any]) -> BoundSource:
    spec = KINDS[kind]
    return BoundSource(kind, spec, spec.options.model_validate(options))


CASES = [(kind, options) for kind, choices in KIND_OPTIONS.items() for options in choices]


def test_every_source_kind_is_fuzzed():
    assert sorted(KIND_OPTIONS) == sorted(KINDS)


@pytest.mark.parametrize(
    ("kind", "options"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)]
)
@given(body=BODIES, sent=headers())
def test_verify_and_normalize_accept_or_refuse_nothing_else(
    kind: str, options: dict[str, Any], body: bytes, sent: dict[str, str]
):
    source = bound(kind, options)
    delivery = Delivery(sent, body)
    try:
        source.kind.verify(delivery, source.options)
        items = source.kind.normalize(delivery, source.options)
    except RequestError:
        return
    for item in items:
        assert isinstance(item.domain, str) and item.domain
        assert isinstance(item.event_type, str) and item.event_type
        event = Event("E", kind, kind, item.domain, item.event_type, item.delivery_id, 0.0,
                      item.data, {}, item.artifacts)  # fmt: skip
        # What is accepted must be storable and showable: strict JSON, valid UTF-8.
        json.dumps(event.as_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- the HTTP surface ---------------------------------------------------------------------


@dataclass
class Surface:
    """The ASGI app, running in a portal's event loop, callable from sync hypothesis tests."""

    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient

    def send(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        # As bytes: HTTP headers are latin-1, httpx would insist on ASCII for str.
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        return self.portal.call(lambda: self.client.request(method, url, headers=raw, **kwargs))


@pytest.fixture(scope="module")
def surface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Surface]:
    root = tmp_path_factory.mktemp("fuzz")
    extra = SOURCES.replace("{sw_secret}", SW_SECRET).replace("{api_token}", API_TOKEN)
    extra = extra.replace("{signing_secret}", SIGNING_SECRET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
        patch.chdir(root)
        service = build_service(project(root, RULES, extra=extra) / "hookwise.yaml")
        app = create_app(service)
        transport = httpx.ASGITransport(app=app)
        with anyio.from_thread.start_blocking_portal() as portal:
            lifespan = portal.wrap_async_context_manager(app.router.lifespan_context(app))
            with lifespan:
                client = httpx.AsyncClient(transport=transport, base_url="http://hookwise.test")
                yield Surface(portal, client)
                portal.call(client.aclose)


SOURCE_NAMES = ["artifactory", "signed", "harbor", "cloudevents", "standard", "github", "shared"]
# Path segments: any text, and any bytes (invalid UTF-8 included), percent-encoded.
PATH_TEXT = st.text(st.characters(codec="utf-8"), max_size=30).map(
    lambda s: quote(s, safe="")
) | st.binary(max_size=20).map(lambda b: quote(b, safe=""))


@given(
    source=st.sampled_from(SOURCE_NAMES) | PATH_TEXT,
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    body=BODIES,
    sent=headers(),
)
def test_the_receiver_never_answers_5xx(
    surface: Surface, source: str, method: str, body: bytes, sent: dict[str, str]
):
    if source == "standard" and sent.get("webhook-id"):
        sent.update(sign_standard(body, sent["webhook-id"][:20] or "x"))
    if source == "artifactory" and "x-jfrog-event-auth" in sent:
        sent["x-jfrog-event-auth"] = SECRET
    response = surface.send(method, f"/hooks/{source}", content=body, headers=sent)
    assert response.status_code < 500, response.text
    if response.status_code != 307:  # `/hooks/x/` is redirected to `/hooks/x`
        assert response.headers["content-type"].startswith("application/json")


SLACK_FIELDS = st.dictionaries(
    st.sampled_from(["payload", "command", "text", "user_id", "channel_id", "type", "x"]),
    st.one_of(
        st.text(max_size=80),
        JSON.map(json.dumps),
        st.fixed_dictionaries(
            {
                "type": st.just("block_actions"),
                "user": JSON | st.fixed_dictionaries({"id": st.text(max_size=12)}),
                "channel": JSON,
                "actions": JSON
                | st.lists(
                    st.fixed_dictionaries(
                        {
                            "action_id": st.sampled_from(["hookwise_approve", "hookwise_reject"])
                            | st.text(max_size=10),
                            "value": st.text(max_size=30) | JSON,
                        }
                    ),
                    max_size=3,
                ),
            }
        ).map(json.dumps),
    ),
    max_size=5,
)


@given(path=st.sampled_from(["/slack/interactions", "/slack/commands"]), fields=SLACK_FIELDS)
def test_signed_slack_requests_never_get_5xx(surface: Surface, path: str, fields: dict[str, str]):
    body = "&".join(f"{quote(k)}={quote(v)}" for k, v in fields.items()).encode()
    response = surface.send("POST", path, content=body, headers=slack_headers(body))
    assert response.status_code < 500, response.text


@given(body=st.binary(max_size=200), sent=headers())
def test_unsigned_slack_requests_are_refused(surface: Surface, body: bytes, sent: dict[str, str]):
    for path in ("/slack/interactions", "/slack/commands"):
        response = surface.send("POST", path, content=body, headers=sent)
        assert response.status_code == 401, response.text


API_PATHS = st.one_of(
    st.just("/api/events"),
    st.builds(lambda i: f"/api/events/{i}", PATH_TEXT),
    st.builds(lambda i: f"/api/events/{i}/replay", PATH_TEXT),
    st.builds(lambda i: f"/api/runs/{i}", PATH_TEXT),
    st.builds(lambda i, d: f"/api/runs/{i}/{d}", PATH_TEXT, st.sampled_from(["approve", "reject"])),
    PATH_TEXT.map(lambda p: f"/api/{p}"),
)
QUERY = st.dictionaries(
    st.sampled_from(["status", "limit", "source", "domain", "event_type", "before", "x"]),
    st.text(max_size=20) | st.integers().map(str),
    max_size=4,
)


@given(
    path=API_PATHS,
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    query=QUERY,
    body=BODIES,
    authorized=st.booleans(),
)
def test_the_api_never_answers_5xx(
    surface: Surface, path: str, method: str, query: dict[str, str], body: bytes, authorized: bool
):
    sent = {"authorization": f"Bearer {API_TOKEN}"} if authorized else {}
    response = surface.send(method, path, params=query, content=body, headers=sent)
    assert response.status_code < 500, response.text
    if not authorized:  # nothing but "no", "no such thing" or "drop the slash"
        assert response.status_code in (401, 404, 405, 307), response.text
