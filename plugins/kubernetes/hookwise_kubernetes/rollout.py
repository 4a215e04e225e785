"""`kubernetes.rollout`: patch the image unless set, follow the rollout, roll back when asked."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from hookwise.plugin import (
    ActionContext,
    ActionError,
    PermanentFailure,
    RetryLater,
    SkipRun,
    tag_of,
)
from hookwise_kubernetes.settings import CHANGE_CAUSE, MEMO, REVISION, RolloutParams, State
from hookwise_kubernetes.workload import _Workload

# -- the action ---------------------------------------------------------------------------

# Set on shutdown so a long wait gives its thread back instead of holding up the exit.
_stopping = threading.Event()


def rollout(params: RolloutParams, context: ActionContext) -> dict[str, Any]:
    """`kubernetes.rollout`: set the image unless it is set, then optionally follow the rollout."""
    workload = _Workload(context.settings, params, context.egress)
    try:
        return _rollout(workload, params, context)
    finally:
        workload.close()


def _rollout(workload: _Workload, params: RolloutParams, context: ActionContext) -> dict[str, Any]:
    body = workload.read()
    old_image = _image(workload, body)
    if params.wait:
        _check_strategy(workload, body)
    memo = _memo(body)
    changed = old_image != params.image
    ours = _ours(memo, context.idempotency_key, params.container)
    if changed and params.policy is not None and not ours:
        new_tag = tag_of(params.image) or params.image
        refusal = params.policy.refusal(new_tag, tag_of(old_image), "running")
        if refusal is not None:
            raise SkipRun(f"{workload.label}: {refusal}")
    if changed:
        cause = params.change_cause or f"hookwise rule {context.rule}, event {context.event.id}"
        note = {
            "key": context.idempotency_key,
            "container": params.container,
            "previous": old_image,
        }
        body = workload.patch(_image_patch(body, params.container, params.image, cause, note))
        context.log.info(
            f"{workload.label}: set container {params.container} to {params.image} "
            f"(was {old_image})"
        )
    elif _ours(memo, context.idempotency_key, params.container):
        old_image, changed = memo["previous"], True
        context.log.info(
            f"{workload.label}: an earlier attempt already set {params.image} (was {old_image}); "
            "following that rollout"
        )
    else:
        context.log.info(f"{workload.label}: already runs {params.image}; nothing to change")
    output: dict[str, Any] = {
        "kind": params.kind,
        "namespace": params.namespace,
        "name": params.name,
        "old_image": old_image,
        "new_image": params.image,
        "revision": _revision(body),
        "changed": changed,
        "rolled_back": False,  # a failed rollout, rolled back or not, raises instead
    }
    if not params.wait:
        return output
    limit = params.timeout
    if context.timeout:
        limit = min(limit, context.timeout * 0.8)
    body, failure = _follow(workload, params, context, limit)
    if failure is None:
        output["revision"] = _revision(body)
        return output
    message = f"{workload.label}: rollout of {params.image} {failure}"
    rolled_back = False
    if not params.rollback_on_failure:
        message += f"; not rolled back (rollback_on_failure is off), it keeps {params.image}"
    elif not changed:
        message += "; not rolled back: this action did not change the image"
    else:
        why_not = _rollback(workload, params, context, old_image)
        rolled_back = why_not is None
        message += f"; rolled back to {old_image}" if why_not is None else f"; {why_not}"
    raise PermanentFailure(
        f"{message} (old_image={old_image}, new_image={params.image}, "
        f"rolled_back={str(rolled_back).lower()})"
    )


def _image(workload: _Workload, body: dict[str, Any]) -> str:
    containers = _containers(body)
    for container in containers:
        if container.get("name") == workload.params.container:
            return str(container.get("image", ""))
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise PermanentFailure(
        f'{workload.label} has no container "{workload.params.container}" in its pod template; '
        f"its containers: {names}"
    )


def _containers(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec = body.get("spec", {}).get("template", {}).get("spec", {})
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _check_strategy(workload: _Workload, body: dict[str, Any]) -> None:
    """kubectl follows RollingUpdate only for StatefulSets and DaemonSets: with OnDelete,
    pods change only when deleted, so there would be nothing to wait for."""
    if workload.params.kind == "Deployment":
        return
    strategy = (body.get("spec", {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        raise PermanentFailure(
            f"{workload.label} uses the {strategy} update strategy, so there is no rollout to "
            "follow; set `wait: false` to only set the image"
        )


def _ours(memo: dict[str, Any], key: str, container: str) -> bool:
    """Whether an earlier attempt of this very action patched this container."""
    mine = memo.get("key") == key and memo.get("container") == container
    return mine and isinstance(memo.get("previous"), str)


def _memo(body: dict[str, Any]) -> dict[str, Any]:
    """What an earlier patch by hookwise recorded on the workload, if anything."""
    annotations = body.get("metadata", {}).get("annotations") or {}
    try:
        memo = json.loads(annotations.get(MEMO) or "{}")
    except ValueError:
        return {}
    return memo if isinstance(memo, dict) else {}


def _image_patch(
    body: dict[str, Any], container: str, image: str, cause: str, memo: dict[str, Any] | None
) -> dict[str, Any]:
    """A strategic-merge patch of one container's image. Its resourceVersion makes it
    conditional: if the workload changed since it was read, the API server answers 409."""
    return {
        "metadata": {
            "resourceVersion": body.get("metadata", {}).get("resourceVersion"),
            "annotations": {CHANGE_CAUSE: cause, MEMO: json.dumps(memo) if memo else None},
        },
        "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}},
    }


def _revision(body: dict[str, Any]) -> str | None:
    revision = (body.get("metadata", {}).get("annotations") or {}).get(REVISION)
    return str(revision) if revision is not None else None


def _follow(
    workload: _Workload, params: RolloutParams, context: ActionContext, limit: float
) -> tuple[dict[str, Any], str | None]:
    """Poll until the rollout is done (None) or failed (why), for at most `limit` seconds.
    Transient errors are logged and polled through: the image is set either way."""
    deadline = time.monotonic() + limit
    body: dict[str, Any] = {}
    said = "the rollout was not observed"
    while True:
        try:
            body = workload.read()
        except RetryLater as exc:
            context.log.warning(f"{exc}; polling on")
        else:
            state, text = _rollout_status(params.kind, body)
            if state == "done":
                context.log.info(text)
                return body, None
            if state == "failed":
                return body, text
            if text != said:
                context.log.info(text)
                said = text
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return body, f"did not finish within {limit:g}s ({said})"
        if _stopping.wait(min(params.poll_interval, remaining)):
            raise RetryLater("hookwise is stopping; the wait for the rollout was interrupted")


def _rollout_status(kind: str, body: dict[str, Any]) -> tuple[State, str]:
    """Where a rollout stands, judged as `kubectl rollout status` judges it."""
    metadata, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    name = metadata.get("name", "")
    generation = metadata.get("generation", 0)
    observed = status.get("observedGeneration", 0)
    if kind == "Deployment":
        if generation > observed:
            return "waiting", "waiting for the deployment spec update to be observed"
        for condition in status.get("conditions") or []:
            progressing = condition.get("type") == "Progressing"
            if progressing and condition.get("reason") == "ProgressDeadlineExceeded":
                return "failed", "did not progress within its deadline (ProgressDeadlineExceeded)"
        replicas = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        if updated < replicas:
            return "waiting", f"{updated} out of {replicas} new replicas have been updated"
        if status.get("replicas", 0) > updated:
            pending = status.get("replicas", 0) - updated
            return "waiting", f"{pending} old replicas are pending termination"
        if status.get("availableReplicas", 0) < updated:
            available = status.get("availableReplicas", 0)
            return "waiting", f"{available} of {updated} updated replicas are available"
        return "done", f'deployment "{name}" successfully rolled out'
    if kind == "StatefulSet":
        if observed == 0 or generation > observed:
            return "waiting", "waiting for the statefulset spec update to be observed"
        replicas = spec.get("replicas", 1)
        if status.get("readyReplicas", 0) < replicas:
            return (
                "waiting",
                f"waiting for {replicas - status.get('readyReplicas', 0)} pods to be ready",
            )
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        if rolling.get("partition") is not None:
            wanted = replicas - rolling["partition"]
            if status.get("updatedReplicas", 0) < wanted:
                return "waiting", (
                    f"partitioned rollout: {status.get('updatedReplicas', 0)} out of {wanted} "
                    "new pods have been updated"
                )
            return "done", f"partitioned rollout complete: {wanted} new pods have been updated"
        if status.get("updateRevision") != status.get("currentRevision"):
            return "waiting", (
                f"waiting for the rolling update to complete {status.get('updatedReplicas', 0)} "
                f"pods at revision {status.get('updateRevision')}"
            )
        return "done", f'statefulset "{name}" rolling update complete'
    if generation > observed:
        return "waiting", "waiting for the daemon set spec update to be observed"
    desired = status.get("desiredNumberScheduled", 0)
    if status.get("updatedNumberScheduled", 0) < desired:
        updated = status.get("updatedNumberScheduled", 0)
        return "waiting", f"{updated} out of {desired} new pods have been updated"
    if status.get("numberAvailable", 0) < desired:
        available = status.get("numberAvailable", 0)
        return "waiting", f"{available} of {desired} updated pods are available"
    return "done", f'daemon set "{name}" successfully rolled out'


def _rollback(
    workload: _Workload, params: RolloutParams, context: ActionContext, old_image: str
) -> str | None:
    """Set `old_image` back, unless someone changed the image meanwhile; None when done,
    else why not."""
    try:
        body = workload.read()
        current = _image(workload, body)
        if current != params.image:
            return f"not rolled back: the image was changed to {current} meanwhile"
        cause = (
            f"hookwise: rollback of {params.image} (rule {context.rule}, event {context.event.id})"
        )
        workload.patch(_image_patch(body, params.container, old_image, cause, None))
    except ActionError as exc:
        return f"not rolled back: {exc}"
    context.log.warning(f"{workload.label}: rolled back to {old_image}")
    return None
