"""Kubernetes integration: `kubernetes.rollout` sets one container's image on a workload
and follows the rollout the way `kubectl rollout status` judges it.

Settings (`integrations.kubernetes`): `in_cluster`, or `kubeconfig` with `context`; `timeout`.

Output of `kubernetes.rollout`: `{"kind": "Deployment", "namespace": "default", "name": "web",
"old_image": "registry/app:1.4", "new_image": "registry/app:1.5", "revision": "7",
"changed": true, "rolled_back": false}`. A rollout that fails fails the run permanently;
its message names the same facts.

At least once: the image is patched only when the container does not already run it, so a
repeated attempt never starts a second rollout. The patch also records, in the workload's
`hookwise/rollout` annotation, the image it replaced and the action's idempotency key:
an attempt that finds its own earlier patch (a crash or a shutdown during the wait)
follows that rollout with the same output, and can still roll back.

Egress: the official client talks through urllib3, not requests or httpx. Its pool
manager is replaced by one whose connections resolve the API server's host, check every
address against the egress policy and connect to the address they checked, at connect
time; it refuses any other scheme, host or port, and never follows a redirect.
"""

from __future__ import annotations

from hookwise.plugin import ActionSpec, IntegrationSpec, hookimpl
from hookwise_kubernetes.rollout import _stopping, rollout
from hookwise_kubernetes.settings import KubernetesSettings, RolloutParams

__all__ = ["KubernetesSettings", "RolloutParams", "rollout"]


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [
        IntegrationSpec(
            "kubernetes", KubernetesSettings, "Kubernetes: in-cluster or a kubeconfig file."
        )
    ]


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="kubernetes.rollout",
            params=RolloutParams,
            run=rollout,
            description="Set a container's image on a Deployment, StatefulSet or DaemonSet; "
            "follow the rollout like kubectl rollout status, optionally rolling back.",
            integration="kubernetes",
        )
    ]


@hookimpl
def hookwise_startup() -> None:
    _stopping.clear()


@hookimpl
def hookwise_shutdown() -> None:
    _stopping.set()
