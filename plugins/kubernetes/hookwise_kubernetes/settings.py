"""`integrations.kubernetes` and the parameters of `kubernetes.rollout`, checked when rules load."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hookwise.plugin import IMAGE_REFERENCE, Duration, VersionPolicy

Kind = Literal["Deployment", "StatefulSet", "DaemonSet"]
State = Literal["done", "waiting", "failed"]
PLURALS: dict[str, str] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}
SMP = "application/strategic-merge-patch+json"
CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
MEMO = "hookwise/rollout"
DEFAULT_PORTS = {"http": 80, "https": 443}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


class KubernetesSettings(BaseModel):
    """`integrations.kubernetes` in hookwise.yaml; a rule's `connection:` may override any key."""

    model_config = ConfigDict(extra="forbid")

    in_cluster: bool = Field(
        default=False,
        description="Use the service account of the pod hookwise runs in (its token and CA "
        "under /var/run/secrets/kubernetes.io/serviceaccount).",
    )
    kubeconfig: str | None = Field(
        default=None, description="Path of a kubeconfig file; the alternative to in_cluster."
    )
    context: str | None = Field(
        default=None, description="With kubeconfig: the context to use instead of its current one."
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Timeout of each API request.")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesSettings:
        if self.in_cluster == bool(self.kubeconfig):
            raise ValueError("set either `in_cluster: true` or `kubeconfig: <path>`, not both")
        if self.context and not self.kubeconfig:
            raise ValueError("`context` needs `kubeconfig`")
        return self


class RolloutParams(BaseModel):
    """`with:` of `kubernetes.rollout`. Templated values are checked after rendering."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(default="Deployment", description="The workload's kind (apps/v1).")
    namespace: str = Field(default="default", description="The workload's namespace.")
    name: str = Field(description="The workload's name.")
    container: str = Field(description="The container (in spec.template) whose image to set.")
    image: str = Field(
        description="Image reference with tag or digest, e.g. "
        "`registry.example.com/app:{{ artifact.tag }}`."
    )
    wait: bool = Field(
        default=True,
        description="Follow the rollout until it completes, as `kubectl rollout status` does; "
        "the action fails when it does not.",
    )
    timeout: Duration = Field(
        default=300.0,
        gt=0,
        description="With wait: how long to follow the rollout. The wait also ends at four "
        "fifths of the action's own timeout, so a rollback still fits in it.",
    )
    poll_interval: Duration = Field(
        default=2.0, gt=0, description="With wait: pause between two looks at the workload."
    )
    rollback_on_failure: bool = Field(
        default=False,
        description="With wait: when the rollout fails, set the image this action replaced "
        "back; the action fails all the same.",
    )
    policy: VersionPolicy | None = Field(
        default=None,
        description="Set the image only when its tag qualifies against the running one "
        "(e.g. semver: minor); otherwise the run ends skipped, saying why.",
    )
    change_cause: str | None = Field(
        default=None,
        description="Recorded as the kubernetes.io/change-cause annotation (shown by `kubectl "
        "rollout history`); by default names the hookwise rule and event.",
    )

    @field_validator("namespace", "container")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label (a-z, 0-9, '-', 1-63 chars)")
        return value

    @field_validator("name")
    @classmethod
    def _dns_subdomain(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a DNS-1123 subdomain name (a-z, 0-9, '-', '.')")
        return value

    @field_validator("image")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not IMAGE_REFERENCE.match(value.strip()):
            raise ValueError(
                f"{value!r} is not an image reference like registry.example.com:5000/app:1.2 "
                "or app@sha256:<digest> (lower-case repository; a tag has no '/' or ':')"
            )
        return value.strip()
