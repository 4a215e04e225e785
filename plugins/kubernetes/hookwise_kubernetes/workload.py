"""One workload on one cluster, read and patched through the guarded client; errors as outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes.client import ApiClient, AppsV1Api, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_incluster_config, load_kube_config
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import (
    HTTPError,
)

from hookwise.plugin import (
    ActionError,
    EgressPolicy,
    PermanentFailure,
    RetryLater,
    excerpt,
    mask,
    retry_after,
)
from hookwise_kubernetes.connection import _GuardedPoolManager
from hookwise_kubernetes.settings import PLURALS, SMP, KubernetesSettings, RolloutParams

# -- one workload on one cluster ----------------------------------------------------------


class _Workload:
    """One attempt's view of one workload: the guarded client, and errors as outcomes."""

    def __init__(
        self, settings: KubernetesSettings, params: RolloutParams, policy: EgressPolicy
    ) -> None:
        configuration = _configuration(settings)
        self.settings = settings
        self.params = params
        self.plural = PLURALS[params.kind]
        self.label = f"{params.kind.lower()} {params.namespace}/{params.name}"
        # Never shown, but masked all the same: the kubeconfig's token is not a hookwise secret.
        self.secrets = [
            value.removeprefix("Bearer ")
            for value in [*configuration.api_key.values(), configuration.password]
            if value
        ]
        self.api = ApiClient(configuration)
        rest = self.api.rest_client
        unguarded = rest.pool_manager
        pool_kw = {**unguarded.connection_pool_kw, "retries": False}
        rest.pool_manager = _GuardedPoolManager(policy, configuration.host, **pool_kw)
        unguarded.clear()
        apps = AppsV1Api(self.api)
        calls: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Deployment": (apps.read_namespaced_deployment, apps.patch_namespaced_deployment),
            "StatefulSet": (apps.read_namespaced_stateful_set, apps.patch_namespaced_stateful_set),
            "DaemonSet": (apps.read_namespaced_daemon_set, apps.patch_namespaced_daemon_set),
        }
        self._read, self._patch = calls[params.kind]

    def read(self) -> dict[str, Any]:
        return self._call(
            "get",
            lambda: self._read(
                self.params.name,
                self.params.namespace,
                _preload_content=False,
                _request_timeout=self.settings.timeout,
            ),
        )

    def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            "patch",
            lambda: self._patch(
                self.params.name,
                self.params.namespace,
                body,
                _preload_content=False,
                _request_timeout=self.settings.timeout,
                _content_type=SMP,
            ),
        )

    def close(self) -> None:
        self.api.rest_client.pool_manager.clear()

    def _call(self, verb: str, function: Callable[[], Any]) -> dict[str, Any]:
        """One API request; its answer as a dict, or RetryLater / PermanentFailure."""
        try:
            answer = json.loads(function().data)
        except ApiException as exc:
            raise self._http_error(exc, verb) from None
        except HTTPError as exc:
            raise RetryLater(
                self.mask(f"{verb} {self.label}: cannot reach the API server: {exc}")
            ) from None
        except ValueError:
            raise RetryLater(f"{verb} {self.label}: the API server's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise RetryLater(f"{verb} {self.label}: the API server's answer is not an object")
        return answer

    def _http_error(self, exc: ApiException, verb: str) -> ActionError:
        status = exc.status or 0
        said = _server_message(exc.body)
        detail = f": {said}" if said else ""
        ns, name = self.params.namespace, self.params.name
        if status == 0:  # the client's own wrapping of a TLS failure
            return PermanentFailure(
                self.mask(
                    f"{verb} {self.label}: TLS with the API server failed "
                    f"({' '.join(str(exc.reason).split())}); "
                    "check the cluster's certificate-authority"
                )
            )
        if status == 401:
            return PermanentFailure(
                self.mask(
                    f"{verb} {self.label}: the API server refused the credentials (401); "
                    f"check the token or client certificate of {self._source()}"
                )
            )
        if status == 403:
            return PermanentFailure(
                self.mask(
                    f"{verb} {self.label}: forbidden (403){detail}; the account needs the RBAC "
                    f'verb "{verb}" on "{self.plural}" (API group "apps") in namespace "{ns}"'
                )
            )
        if status == 404:
            return PermanentFailure(
                self.mask(
                    f'{self.label}: no {self.params.kind} named "{name}" in namespace "{ns}" '
                    "(404); check kind, namespace and name"
                )
            )
        if status == 409:
            return RetryLater(
                self.mask(f"{verb} {self.label}: it changed since it was read (409){detail}")
            )
        if status == 429 or status >= 500:
            headers = exc.headers or {}
            return RetryLater(
                self.mask(f"{verb} {self.label}: the API server answered {status}{detail}"),
                delay=retry_after(headers.get("Retry-After")),
            )
        return PermanentFailure(
            self.mask(f"{verb} {self.label}: the API server answered {status}{detail}")
        )

    def _source(self) -> str:
        if self.settings.in_cluster:
            return "the pod's service account"
        context = f" (context {self.settings.context})" if self.settings.context else ""
        return f"kubeconfig {self.settings.kubeconfig}{context}"

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return mask(text)


def _configuration(settings: KubernetesSettings) -> Configuration:
    """The client's configuration from the service account or the kubeconfig file."""
    configuration = Configuration()
    # The client's configuration loaders are its only functions without type annotations.
    try:
        if settings.in_cluster:
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig,
                context=settings.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        where = "in_cluster" if settings.in_cluster else f"kubeconfig {settings.kubeconfig}"
        raise PermanentFailure(mask(f"cannot use {where}: {excerpt(str(exc), 300)}")) from None
    # The guarded connections go straight to the API server: no proxy from the environment.
    configuration.proxy = None
    return configuration


def _server_message(body: Any) -> str:
    """The `message` of the API server's Status object, else a short excerpt of the body."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        status = json.loads(text)
    except ValueError:
        return excerpt(" ".join(text.split()), 300)
    return excerpt(str(status.get("message", "")) if isinstance(status, dict) else text, 300)
