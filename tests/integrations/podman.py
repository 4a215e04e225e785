"""A real Docker-API engine and registry for tests: Podman's API service and `docker-registry`.

Docker's own engine cannot run on these machines, but Podman's API service speaks the
Docker Engine API, so the docker SDK and hookwise_docker work against it unmodified.
The session fixture `podman_lab`:

- installs the Debian packages podman, runc, docker-registry and busybox-static when one
  is missing (only as root; otherwise the tests skip, saying what to install);
- runs the CNCF distribution registry on 127.0.0.1:<free port>, storage in a temp dir and
  htpasswd (bcrypt) auth, so pulls need real credentials;
- runs `podman system service` on a private socket, with private storage and config
  (runc, not crun; default ulimits; the plain-HTTP registry listed as insecure, written
  before the service starts as Podman reads it once);
- builds tiny helloworld images from a busybox rootfs (`podman import`) and pushes them:
  v1 and v2 serve "hello v1"/"hello v2" with `httpd` on port 8080, v3's command fails at
  start after logging why, v4 serves on 8081 instead (so a health check of 8080 fails).
  The local copies are removed after the push, so every pull in a test is a real one;
- stops everything and deletes all of it at the end (`podman system reset`).

Where no engine can be had the tests skip with the reason, except under CI (`CI` set),
where they fail: CI must never silently skip them. `.ci/run` installs the packages first.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

PACKAGES = ("podman", "runc", "docker-registry", "busybox-static")
BUSYBOX = Path("/bin/busybox")
USERNAME = "deployer"
PASSWORD = "s3cret-registry-pass"
REPOSITORY = "helloworld"
HTTPD = ["/bin/busybox", "httpd", "-f", "-h", "/www", "-p"]
# `httpd` as PID 1 would ignore SIGTERM (no handler) and every stop would take the whole
# grace period; the shell exits on TERM, like a well-behaved service.
SERVE = "trap 'exit 0' TERM; {httpd} & wait"

IMAGES = {
    "v1": ("hello v1", 8080, None),
    "v2": ("hello v2", 8080, None),
    "v3": ("hello v3", 8080, "echo 'v3: cannot read /etc/app.conf, giving up' >&2; exit 3"),
    "v4": ("hello v4", 8081, None),
}


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI, where a missing engine is a broken set-up and not a choice."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the Docker tests must run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    """The running engine and registry, and helpers the tests share."""

    root: Path
    socket: Path
    registry: str
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    username: str = USERNAME
    password: str = PASSWORD

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    def image(self, tag: str) -> str:
        return f"{self.registry}/{REPOSITORY}:{tag}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """`integrations.docker` for this engine and registry."""
        creds = {"username": self.username, "password": self.password}
        return {"base_url": self.base_url, "registries": {self.registry: creds}, **overrides}

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr}")
        return done

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=30)

    def remove_containers(self) -> None:
        self.podman("rm", "--all", "--force", "--time", "0", check=False)

    def remove_images(self) -> None:
        """Forget pulled images, so the next pull fetches from the registry again."""
        self.podman("rmi", "--all", "--force", check=False)


def _missing_packages() -> list[str]:
    tools = {"podman": "podman", "runc": "runc", "docker-registry": "docker-registry"}
    missing = [package for package, tool in tools.items() if shutil.which(tool) is None]
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "busybox-static"], capture_output=True, text=True
    )
    if "install ok installed" not in status.stdout or not BUSYBOX.exists():
        missing.append("busybox-static")
    return missing


def ensure_packages() -> float:
    """Install what is missing (root only); returns the seconds it took."""
    missing = _missing_packages()
    if not missing:
        return 0.0
    command = f"apt-get install -y {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable(f"no Docker-API engine: {', '.join(missing)} missing; run `{command}` as root")
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            unavailable(f"`{' '.join(step)}` failed: {done.stderr.strip()[-500:]}")
    if still := _missing_packages():
        unavailable(f"{', '.join(still)} still missing after `{command}`")
    return time.monotonic() - started


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (all the registry's htpasswd accepts), from the system's libcrypt."""
    try:
        lib = ctypes.CDLL("libcrypt.so.1")
    except OSError as exc:
        unavailable(f"libcrypt.so.1 (Debian's libcrypt1) is needed to write htpasswd: {exc}")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(b"$2y$", 5, None, 0)
    hashed = lib.crypt(password.encode(), setting) if setting else None
    if not hashed or not hashed.startswith(b"$2"):
        unavailable("libcrypt cannot make bcrypt hashes, which the registry's htpasswd needs")
    return hashed.decode()


def _write_config(root: Path, registry: str) -> dict[str, str]:
    """Private containers/registries/storage config; the env that points podman at it."""
    (root / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=10000:10000", "nproc=1000:1000"]\n'
        "[engine]\n"
        'runtime = "runc"\n'  # crun fails on this kernel's cgroup set-up; runc works
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{root / "tmp"}"\n'
    )
    (root / "registries.conf").write_text(
        "unqualified-search-registries = []\n"
        f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n'
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "storage"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    return {
        **os.environ,
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(root / "registries.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }


def _start_registry(root: Path, port: int) -> subprocess.Popen:
    (root / "htpasswd").write_text(f"{USERNAME}:{bcrypt_hash(PASSWORD)}\n")
    (root / "registry.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'registry'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: hookwise-tests\n"
        f"auth:\n  htpasswd:\n    realm: hookwise-tests\n    path: {root / 'htpasswd'}\n"
    )
    with (root / "registry.log").open("w") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            ["docker-registry", "serve", str(root / "registry.yml")], stdout=log, stderr=log
        )

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401
        return False

    _wait(answers, process, root / "registry.log", "docker-registry")
    return process


def _start_podman(root: Path, env: dict[str, str]) -> subprocess.Popen:
    sock = root / "podman.sock"
    with (root / "podman.log").open("w") as log:
        process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            env=env,
            stdout=log,
            stderr=log,
        )

    def answers() -> bool:
        if not sock.exists():
            return False
        with contextlib.suppress(httpx.HTTPError):
            transport = httpx.HTTPTransport(uds=str(sock))
            with httpx.Client(transport=transport, timeout=2) as client:
                return client.get("http://podman/_ping").text == "OK"
        return False

    _wait(answers, process, root / "podman.log", "podman system service")
    return process


def _wait(ready: Any, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            unavailable(f"{what} exited ({process.returncode}): {log.read_text()[-800:]}")
        if ready():
            return
        time.sleep(0.1)
    process.kill()
    unavailable(f"{what} did not answer within 30s: {log.read_text()[-800:]}")


def _rootfs(page: str) -> bytes:
    """A tar of a minimal root: static busybox, a few applet links, and /www/index.html."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, *, data: bytes | None = None, link: str = "", mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for directory in ("bin", "etc", "tmp", "www"):
            add(directory)
        add("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755)
        for applet in ("sh", "httpd", "wget", "false", "sleep", "cat", "echo"):
            add(f"bin/{applet}", link="busybox")
        add("www/index.html", data=f"{page}\n".encode())
    return out.getvalue()


def _build_and_push(lab: Lab) -> None:
    for tag, (page, port, failing) in IMAGES.items():
        tar = lab.root / f"rootfs-{tag}.tar"
        tar.write_bytes(_rootfs(page))
        script = failing or SERVE.format(httpd=" ".join([*HTTPD, str(port)]))
        cmd = '["/bin/sh", "-c", "' + script.replace('"', '\\"') + '"]'
        lab.podman(
            "import",
            "--change",
            f"CMD {cmd}",
            "--change",
            f"ENV GREETING=image-{tag}",
            "--change",
            f"LABEL org.example.version={tag}",
            "--change",
            f"EXPOSE {port}",
            str(tar),
            lab.image(tag),
        )
        creds = f"{lab.username}:{lab.password}"
        lab.podman("push", "--tls-verify=false", "--creds", creds, lab.image(tag))
    lab.remove_images()


@pytest.fixture(scope="session")
def podman_lab() -> Iterator[Lab]:
    timings = {"install": ensure_packages()}
    root = Path(tempfile.mkdtemp(prefix="hookwise-podman-"))
    registry = f"127.0.0.1:{free_port()}"
    env = _write_config(root, registry)
    processes: list[subprocess.Popen] = []
    lab = Lab(root, root / "podman.sock", registry, env, timings)
    try:
        started = time.monotonic()
        processes.append(_start_registry(root, int(registry.rsplit(":", 1)[1])))
        processes.append(_start_podman(root, env))
        timings["start"] = time.monotonic() - started
        started = time.monotonic()
        _build_and_push(lab)
        timings["images"] = time.monotonic() - started
        yield lab
    finally:
        if len(processes) == 2:
            lab.remove_containers()
            _stop(processes.pop())  # the service first: it holds the storage `reset` deletes
        if processes:
            lab.podman("system", "reset", "--force", check=False)
        for process in processes:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def lab(podman_lab: Lab) -> Iterator[Lab]:
    """The session's engine, with no containers and no pulled images before and after."""
    podman_lab.remove_containers()
    podman_lab.remove_images()
    yield podman_lab
    podman_lab.remove_containers()
