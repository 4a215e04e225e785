"""`integrations.docker`: which engine to talk to, and the registry credentials for pulls."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import docker
from docker.errors import DockerException
from docker.tls import TLSConfig
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hookwise.plugin import Duration, PermanentFailure, RetryLater

DEFAULT_BASE_URL = "unix:///var/run/docker.sock"
HUB = "docker.io"
# Every name Docker Hub goes by in image references and in `docker login`.
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_SCHEMES = ("unix", "tcp", "http", "https", "npipe")


def registry_key(host: str) -> str:
    """A registry as credentials are looked up: bare host[:port], Docker Hub as docker.io."""
    host = host.strip().lower()
    if "://" in host:
        host = urlsplit(host).netloc
    host = host.split("/", 1)[0]
    return HUB if host in _HUB_ALIASES else host


class RegistryCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, description="Registry user (or token name).")
    password: SecretStr = Field(description="Password or access token, e.g. ${REGISTRY_TOKEN}.")

    @field_validator("password")
    @classmethod
    def _not_empty(cls, password: SecretStr) -> SecretStr:
        if not password.get_secret_value():
            raise ValueError("password is empty: is its ${VAR} set?")
        return password


class DockerSettings(BaseModel):
    """How to reach the engine and the registries it pulls from."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="The engine's API: unix:///path/to.sock (Docker or Podman's socket), "
        "tcp://host:2376 or https://host:2376 (with TLS settings).",
    )
    timeout: Duration = Field(
        default=60.0, gt=0, description="Timeout of each API request to the engine."
    )
    registries: dict[str, RegistryCredentials] = Field(
        default_factory=dict,
        description="Credentials per registry host (e.g. `registry.example.com:5000` or "
        "`docker.io`), sent with pulls of images from that host only.",
    )
    registry: str | None = Field(
        default=None, description="With `username`/`password`: the one registry they are for."
    )
    username: str | None = Field(default=None, description="User for `registry`.")
    password: SecretStr | None = Field(
        default=None, description="Password or token for `registry`."
    )
    tls_ca_cert: str | None = Field(
        default=None, description="CA bundle that signed the engine's certificate (tcp/https)."
    )
    tls_client_cert: str | None = Field(
        default=None, description="Client certificate for an engine that requires one."
    )
    tls_client_key: str | None = Field(default=None, description="Key of `tls_client_cert`.")
    tls_verify: bool = Field(default=True, description="Verify the engine's TLS certificate.")

    @field_validator("base_url")
    @classmethod
    def _engine_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"base_url must start with one of {', '.join(s + '://' for s in _SCHEMES)}, "
                f"got {url!r}"
            )
        if parts.scheme in ("unix", "npipe"):
            if not (parts.path or parts.netloc):
                raise ValueError(f"base_url {url!r} names no socket path")
        elif not parts.hostname:
            raise ValueError(f"base_url {url!r} has no host")
        return url

    @field_validator("registries")
    @classmethod
    def _registry_keys(
        cls, registries: dict[str, RegistryCredentials]
    ) -> dict[str, RegistryCredentials]:
        return {registry_key(host): creds for host, creds in registries.items()}

    @model_validator(mode="after")
    def _single_registry(self) -> DockerSettings:
        given = [n for n in ("registry", "username", "password") if getattr(self, n) is not None]
        if given and len(given) < 3:
            missing = sorted({"registry", "username", "password"} - set(given))
            raise ValueError(
                f"registry, username and password go together; missing: {', '.join(missing)} "
                "(credentials are only ever sent to the registry they are for)"
            )
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("tls_client_cert and tls_client_key go together")
        return self

    def credentials_for(self, host: str) -> RegistryCredentials | None:
        """The credentials for one registry host, if any were configured."""
        key = registry_key(host)
        if self.registry is not None and registry_key(self.registry) == key:
            assert self.username is not None and self.password is not None
            return RegistryCredentials(username=self.username, password=self.password)
        return self.registries.get(key)


def connect(settings: DockerSettings) -> docker.DockerClient:
    """A client for one action call; the engine is asked its API version right away.

    Clients are not cached: construction costs one local request, and a fresh client
    never holds a connection to an engine that restarted in between.
    """
    tls: TLSConfig | bool = False
    if settings.base_url.startswith("https://") or settings.tls_ca_cert or settings.tls_client_cert:
        client_cert = (
            (settings.tls_client_cert, settings.tls_client_key)
            if settings.tls_client_cert
            else None
        )
        try:
            tls = TLSConfig(
                client_cert=client_cert,
                ca_cert=settings.tls_ca_cert,
                verify=settings.tls_ca_cert or settings.tls_verify,
            )
        except DockerException as exc:
            raise PermanentFailure(f"docker TLS settings are unusable: {exc}") from exc
    if settings.base_url.startswith("unix://"):
        _check_socket(settings.base_url.removeprefix("unix://"), settings.timeout)
    try:
        return docker.DockerClient(base_url=settings.base_url, timeout=settings.timeout, tls=tls)
    except DockerException as exc:
        raise RetryLater(
            f"cannot reach the Docker engine at {settings.base_url}: {exc}; check that the "
            "engine runs and that hookwise may use its socket"
        ) from exc


def _check_socket(path: str, timeout: float) -> None:
    """Say plainly why a local socket cannot be used (the SDK only says "connection failed")."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except PermissionError as exc:
            raise PermanentFailure(
                f"hookwise may not use the Docker engine's socket {path} ({exc.strerror}); "
                "run hookwise as a user with access to it (e.g. in the docker group)"
            ) from exc
        except FileNotFoundError as exc:
            raise RetryLater(
                f"cannot reach the Docker engine at unix://{path}: no such socket; "
                "is the engine (or `podman system service`) running?"
            ) from exc
        except OSError as exc:
            raise RetryLater(
                f"cannot reach the Docker engine at unix://{path}: {exc.strerror or exc}"
            ) from exc
