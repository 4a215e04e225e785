"""A local stand-in for the Kubernetes apps/v1 API, close enough for the official client.

Endpoints (nothing else; any other path answers 404):

- GET   /apis/apps/v1/namespaces/{ns}/{deployments|statefulsets|daemonsets}/{name}
- PATCH the same, `Content-Type: application/strategic-merge-patch+json` only (415 otherwise)

What a PATCH honours, as the API server does:

- `metadata.annotations`: merged key by key (`null` removes a key);
- `metadata.resourceVersion`: a precondition, 409 Conflict when it is not the current one;
- `spec.template.spec.containers`: merged by `name` (fields of a listed container are
  replaced, a new name is appended). Any other patched field answers 400, so a client
  that patches more than this subset finds out here rather than against a cluster.

`metadata.resourceVersion` increases on every change; `metadata.generation` only when
the spec changes. The status lags: the first GET after a change still shows the old
`observedGeneration`; the rollout then moves one stage per GET through every state
`kubectl rollout status` tells apart (new replicas updated, old ones terminating,
updated ones available). For a Deployment the `deployment.kubernetes.io/revision`
annotation goes up when a new rollout is observed.

Each object's `behaviour` decides how its rollouts go: "progress"; "stall" (stuck after
the first stage; for a Deployment the Progressing condition turns to
ProgressDeadlineExceeded after `deadline_polls` GETs); "fail-then-rollback-ok" (the
first rollout stalls, later ones progress).

Authentication: `Authorization: Bearer <token>`, 401 without a known token, 403 for a
verb the token's user lacks (`TOKENS`). `fail_next()` answers the next request(s) with
a given status, as a Status object, like an overloaded or conflicting API server.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from tests.standins.loopback import Loopback, send_json

ADMIN_TOKEN = "kube-admin-token-1234"
READER_TOKEN = "kube-reader-token-5678"
# token -> (user name, verbs on apps/v1 workloads)
TOKENS = {
    ADMIN_TOKEN: ("system:serviceaccount:ci:hookwise", {"get", "patch"}),
    READER_TOKEN: ("system:serviceaccount:ci:reader", {"get"}),
}
KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
PATH = re.compile(
    r"^/apis/apps/v1/namespaces/([^/]+)/(deployments|statefulsets|daemonsets)/([^/]+)$"
)
REVISION = "deployment.kubernetes.io/revision"
SMP = "application/strategic-merge-patch+json"
REASONS = {409: "Conflict", 429: "TooManyRequests", 503: "ServiceUnavailable"}


@dataclass
class Workload:
    """One object and the script of its rollouts."""

    body: dict[str, Any]
    pods: int  # replicas; for a DaemonSet, the nodes it runs on
    behaviour: str = "progress"
    deadline_polls: int = 3
    stage: int = 0  # of the current rollout; 0: the spec change is not observed yet
    rollouts: int = 0  # rollouts started since the stand-in began
    stalled_polls: int = 0

    @property
    def plural(self) -> str:
        return {v: k for k, v in KINDS.items()}[self.body["kind"]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int
    method: str | None
    times: int
    after: int = 0  # matching requests answered normally first
    headers: dict[str, str] = field(default_factory=dict)


class KubeStandin:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Workload] = {}
        self.requests: list[Seen] = []
        self.scripted: list[Scripted] = []
        self.version = 100
        self.lock = threading.Lock()
        self.loopback = Loopback(lambda request: self._handle(request, request.command),
                                 ["GET", "PATCH"])  # fmt: skip
        self.url = self.loopback.url

    # -- scripting and inspection -------------------------------------------------------

    def add(
        self,
        kind: str,
        name: str,
        containers: dict[str, str],
        *,
        namespace: str = "default",
        replicas: int = 3,
        behaviour: str = "progress",
        strategy: str = "RollingUpdate",
    ) -> Workload:
        """A workload that has finished rolling out `containers` (name -> image)."""
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": self._next_version(),
                "annotations": {REVISION: "1"} if kind == "Deployment" else {},
            },
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [{"name": c, "image": i} for c, i in containers.items()]
                    },
                },
            },
        }
        strategy_key = "strategy" if kind == "Deployment" else "updateStrategy"
        body["spec"][strategy_key] = {"type": strategy}
        if kind != "DaemonSet":
            body["spec"]["replicas"] = replicas
        workload = Workload(body, replicas, behaviour, stage=4)  # rolled out
        self._set_status(workload)
        self.objects[(namespace, workload.plural, name)] = workload
        return workload

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        plural = {v: k for k, v in KINDS.items()}[kind]
        return self.objects[(namespace, plural, name)].body

    def image(self, kind: str, name: str, container: str, namespace: str = "default") -> str:
        containers = self.get(kind, name, namespace)["spec"]["template"]["spec"]["containers"]
        return next(c["image"] for c in containers if c["name"] == container)

    def fail_next(
        self,
        status: int,
        method: str | None = None,
        times: int = 1,
        after: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """After `after` more requests (of `method`, if given), the next `times` answer `status`."""
        self.scripted.append(Scripted(status, method, times, after, headers or {}))

    def seen(self, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if method is None or r.method == method]

    def kubeconfig(self, path: Path, token: str = ADMIN_TOKEN) -> Path:
        """A kubeconfig whose current context reaches this stand-in with `token`."""
        return write_kubeconfig(path, self.url, token)

    def close(self) -> None:
        self.loopback.close()

    # -- request handling ----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append(Seen(method, handler.path, headers, body))
            status, answer, extra = self._answer(method, handler.path, headers, body)
        send_json(handler, status, answer, extra)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        match = PATH.match(path.split("?", 1)[0])
        if match is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        namespace, plural, name = match.groups()
        resource = f'{plural}.apps "{name}"'
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in TOKENS:
            return _status(401, "Unauthorized", "Unauthorized")
        user, verbs = TOKENS[token]
        verb = method.lower()
        if verb not in verbs:
            return _status(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "{user}" cannot {verb} resource "{plural}" '
                f'in API group "apps" in the namespace "{namespace}"',
            )
        for scripted in self.scripted:
            if scripted.times > 0 and scripted.method in (None, method):
                if scripted.after > 0:
                    scripted.after -= 1
                    continue
                scripted.times -= 1
                reason = REASONS.get(scripted.status, "InternalError")
                return _status(scripted.status, reason, "scripted failure", scripted.headers)
        workload = self.objects.get((namespace, plural, name))
        if workload is None:
            return _status(404, "NotFound", f"{resource} not found")
        if method == "GET":
            answer = copy.deepcopy(workload.body)
            self._advance(workload)  # after answering: the status lags one look behind
            return 200, answer, {}
        if headers.get("content-type") != SMP:
            return _status(
                415, "UnsupportedMediaType", f"unsupported patch type {headers.get('content-type')}"
            )
        return self._patch(workload, resource, body)

    def _patch(
        self, workload: Workload, resource: str, patch: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not isinstance(patch, dict) or set(patch) - {"metadata", "spec"}:
            return _status(400, "BadRequest", "the stand-in patches metadata and spec only")
        metadata = patch.get("metadata") or {}
        wanted = metadata.get("resourceVersion")
        if wanted is not None and wanted != workload.body["metadata"]["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {resource}: the object has been modified; "
                "please apply your changes to the latest version and try again",
            )
        if set(metadata) - {"annotations", "resourceVersion"}:
            return _status(400, "BadRequest", "the stand-in patches metadata.annotations only")
        spec = patch.get("spec") or {}
        containers = spec.get("template", {}).get("spec", {}).get("containers")
        if spec and spec != {"template": {"spec": {"containers": containers}}}:
            return _status(400, "BadRequest", "the stand-in patches template containers only")
        before = copy.deepcopy(workload.body)
        annotations = workload.body["metadata"].setdefault("annotations", {})
        for key, value in (metadata.get("annotations") or {}).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        current = workload.body["spec"]["template"]["spec"]["containers"]
        for change in containers or []:
            known = next((c for c in current if c["name"] == change.get("name")), None)
            if known is None:
                current.append(dict(change))
            else:
                known.update(change)
        if workload.body != before:
            workload.body["metadata"]["resourceVersion"] = self._next_version()
            if workload.body["spec"] != before["spec"]:
                workload.body["metadata"]["generation"] += 1
                workload.stage = 0
                workload.rollouts += 1
                workload.stalled_polls = 0
        return 200, copy.deepcopy(workload.body), {}

    # -- the controllers, one stage per GET ------------------------------------------------

    def _advance(self, workload: Workload) -> None:
        if workload.stage >= 4:
            return
        stalls = workload.behaviour == "stall" or (
            workload.behaviour == "fail-then-rollback-ok" and workload.rollouts == 1
        )
        if stalls and workload.stage >= 1:
            workload.stalled_polls += 1
        else:
            workload.stage += 1
            if workload.stage == 1 and workload.body["kind"] == "Deployment":
                annotations = workload.body["metadata"]["annotations"]
                annotations[REVISION] = str(int(annotations.get(REVISION, "0")) + 1)
        self._set_status(workload)

    def _set_status(self, workload: Workload) -> None:
        """The status a controller reports at `workload.stage` of its rollout (0: the new
        spec is not observed yet, so the previous status stays, with its generation)."""
        body, stage, n = workload.body, workload.stage, workload.pods
        if stage == 0:
            return
        generation = body["metadata"]["generation"]
        updated = 1 if stage == 1 else n
        waiting = n - 1 if stage < 4 else n  # one pod not yet ready / available
        if body["kind"] == "Deployment":
            condition = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
            if stage == 4:
                condition["reason"] = "NewReplicaSetAvailable"
            elif workload.stalled_polls >= workload.deadline_polls:
                condition = {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{body["metadata"]["name"]}-{generation}" has '
                    "timed out progressing.",
                }
            body["status"] = {
                "observedGeneration": generation,
                "replicas": n + 1 if stage <= 2 else n,  # a surge pod of the old set
                "updatedReplicas": updated,
                "availableReplicas": waiting if stage == 3 else n,
                "conditions": [condition],
            }
        elif body["kind"] == "StatefulSet":
            revision = f"{body['metadata']['name']}-{generation}"
            old = body.get("status", {})
            body["status"] = {
                "observedGeneration": generation,
                "replicas": n,
                "readyReplicas": waiting,
                "updatedReplicas": updated,
                "currentRevision": revision if stage == 4 else old.get("currentRevision"),
                "updateRevision": revision,
            }
        else:
            body["status"] = {
                "observedGeneration": generation,
                "desiredNumberScheduled": n,
                "currentNumberScheduled": n,
                "updatedNumberScheduled": updated,
                "numberAvailable": waiting,
                "numberReady": waiting,
            }

    def _next_version(self) -> str:
        self.version += 1
        return str(self.version)


def write_kubeconfig(path: Path, server: str, token: str = ADMIN_TOKEN) -> Path:
    """A kubeconfig whose current context reaches `server` with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": server}}],
        "users": [{"name": "hookwise", "user": {"token": token}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "hookwise"}}],
        "current-context": "standin",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _status(
    code: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """An error as the API server writes it: a v1 Status object."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, status, headers or {}
