"""What a redeployed container keeps of the one it replaces, and how overrides apply.

The new container gets the old one's settings as `containers.create` accepts them, except
what came from the old *image* (its env, labels, command, entrypoint, user, working dir,
health check), so the new image's defaults take effect: a setting counts as the
container's own only where it differs from the old image's.

Kept: environment, labels, command, entrypoint, user, working dir, hostname and
domainname (when set by hand), health check (when set on the container), tty/stdin,
stop signal, port bindings, volumes and bind mounts (read-only or read-write), tmpfs
mounts, restart policy, networks with their aliases (or network mode host / none /
container:<id>), extra hosts, DNS servers/search/options, added and dropped
capabilities, privileged, security options, devices, group_add, init, read-only root,
memory and CPU limits (mem_limit, memswap_limit, nano_cpus, cpu_shares, cpuset_cpus),
sysctls and the log driver with its options.

Not kept: static IP/MAC addresses, mount options other than ro/rw (propagation, SELinux
relabelling, volume driver options), ulimits, pids and shm limits (the engine's defaults
apply), and anything else not listed above.
"""

from __future__ import annotations

from typing import Any

OWN_LABELS = "io.hookwise.redeploy."  # labels hookwise sets itself; never carried over
_DEFAULT_NETWORKS = {"bridge", "default", "podman", ""}
_DEFAULT_STOP_SIGNALS = {"", "15", "SIGTERM", "TERM"}

# HostConfig fields copied as they are when set: inspect name -> containers.create name.
_HOST_FIELDS = {
    "ExtraHosts": "extra_hosts",
    "Dns": "dns",
    "DnsSearch": "dns_search",
    "DnsOptions": "dns_opt",
    "CapAdd": "cap_add",
    "CapDrop": "cap_drop",
    "Privileged": "privileged",
    "SecurityOpt": "security_opt",
    "GroupAdd": "group_add",
    "Init": "init",
    "ReadonlyRootfs": "read_only",
    "Memory": "mem_limit",
    "MemorySwap": "memswap_limit",
    "NanoCpus": "nano_cpus",
    "CpuShares": "cpu_shares",
    "CpusetCpus": "cpuset_cpus",
    "Sysctls": "sysctls",
    "Tmpfs": "tmpfs",
}


def env_dict(entries: list[str] | None) -> dict[str, str]:
    """`["A=1", "B"]` as `{"A": "1", "B": ""}`, later entries winning as in the engine."""
    out: dict[str, str] = {}
    for entry in entries or []:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _own(container: Any, image: Any) -> Any:
    """The container's value, or None where it only repeats the old image's."""
    empty: tuple[Any, ...] = (None, "", [], {})
    if container in empty or container == image:
        return None
    return container


def kept_settings(attrs: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """`containers.create` keyword arguments that recreate this container's own settings."""
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    short_ids = {attrs.get("Id", "")[:12], attrs.get("Id", "")}
    kept: dict[str, Any] = {}

    image_env = env_dict(image_config.get("Env"))
    env = {
        key: value
        for key, value in env_dict(config.get("Env")).items()
        if image_env.get(key) != value
        and not (key == "HOSTNAME" and value in short_ids | {config.get("Hostname")})
    }
    if env:
        kept["environment"] = env
    image_labels = image_config.get("Labels") or {}
    labels = {
        key: value
        for key, value in (config.get("Labels") or {}).items()
        if image_labels.get(key) != value and not key.startswith(OWN_LABELS)
    }
    if labels:
        kept["labels"] = labels
    for name, kwarg in (
        ("Cmd", "command"),
        ("Entrypoint", "entrypoint"),
        ("User", "user"),
        ("WorkingDir", "working_dir"),
        ("Healthcheck", "healthcheck"),
    ):
        value = _own(config.get(name), image_config.get(name))
        if value is not None and not (name == "WorkingDir" and value == "/"):
            kept[kwarg] = value
    if config.get("Hostname") and config["Hostname"] not in short_ids:
        kept["hostname"] = config["Hostname"]
    if config.get("Domainname"):
        kept["domainname"] = config["Domainname"]
    for name, kwarg in (("Tty", "tty"), ("OpenStdin", "stdin_open")):
        if config.get(name):
            kept[kwarg] = True
    stop_signal = str(config.get("StopSignal") or "")
    if stop_signal not in _DEFAULT_STOP_SIGNALS | {str(image_config.get("StopSignal") or "")}:
        kept["stop_signal"] = stop_signal

    for name, kwarg in _HOST_FIELDS.items():
        if host.get(name):
            kept[kwarg] = host[name]
    if host.get("Devices"):
        kept["devices"] = host["Devices"]
    log_config = host.get("LogConfig") or {}
    if log_config.get("Type"):
        kept["log_config"] = {"Type": log_config["Type"], "Config": log_config.get("Config") or {}}
    policy = host.get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        kept["restart_policy"] = {
            "Name": policy["Name"],
            "MaximumRetryCount": policy.get("MaximumRetryCount") or 0,
        }
    ports = {
        port: [(b.get("HostIp") or "", b.get("HostPort") or None) for b in bindings]
        for port, bindings in (host.get("PortBindings") or {}).items()
        if bindings
    }
    if ports:
        kept["ports"] = ports
    volumes = [_volume(mount) for mount in attrs.get("Mounts") or []]
    if any(volumes):
        kept["volumes"] = [v for v in volumes if v]
    kept.update(_networks(attrs, short_ids))
    return kept


def _volume(mount: dict[str, Any]) -> str | None:
    """A mount as a `source:destination:mode` bind string (tmpfs is kept via `tmpfs`)."""
    mode = "rw" if mount.get("RW", True) else "ro"
    if mount.get("Type") == "bind":
        return f"{mount['Source']}:{mount['Destination']}:{mode}"
    if mount.get("Type") == "volume" and mount.get("Name"):
        return f"{mount['Name']}:{mount['Destination']}:{mode}"
    return None


def _networks(attrs: dict[str, Any], short_ids: set[str]) -> dict[str, Any]:
    """`network_mode` for host/none/container:, else the networks joined and their aliases."""
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    if mode in ("host", "none") or mode.startswith("container:"):
        return {"network_mode": mode}
    joined = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    networks = {
        name: [a for a in (endpoint or {}).get("Aliases") or [] if a not in short_ids]
        for name, endpoint in joined.items()
        if name not in _DEFAULT_NETWORKS
    }
    return {"networks": networks} if networks else {}


def apply_overrides(kept: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides from the rule on top of what is kept; see RedeployParams for each one."""
    out = dict(kept)
    if overrides.get("env"):
        out["environment"] = {**out.get("environment", {}), **overrides["env"]}
    if overrides.get("labels"):
        out["labels"] = {**out.get("labels", {}), **overrides["labels"]}
    if overrides.get("ports"):
        ports = dict(out.get("ports", {}))
        for port, host_port in overrides["ports"].items():
            key = str(port) if "/" in str(port) else f"{port}/tcp"
            if host_port is None:
                ports.pop(key, None)
            else:
                ports[key] = [_host_binding(host_port)]
        out["ports"] = ports
    if overrides.get("volumes"):
        given = {v.split(":")[1]: v for v in overrides["volumes"]}
        out["volumes"] = [v for v in out.get("volumes", []) if v.split(":")[1] not in given] + list(
            given.values()
        )
    if overrides.get("restart_policy"):
        out.pop("restart_policy", None)
        policy = restart_policy(overrides["restart_policy"])
        if policy is not None:
            out["restart_policy"] = policy
    if overrides.get("network"):
        out.pop("network_mode", None)
        network = overrides["network"]
        if network in ("host", "none") or network.startswith("container:"):
            out.pop("networks", None)
            out["network_mode"] = network
        else:
            out["networks"] = {network: []}
    if overrides.get("command") is not None:
        out["command"] = overrides["command"]
    return out


def _host_binding(value: int | str) -> tuple[str, str | None]:
    """`8080`, `"8080"` or `"127.0.0.1:8080"` as (host ip, host port)."""
    ip, _, port = str(value).rpartition(":")
    return (ip.strip("[]"), port or None)


def restart_policy(text: str) -> dict[str, Any] | None:
    """`always`, `unless-stopped` or `on-failure[:N]` as the engine's RestartPolicy; `no`: None."""
    name, _, count = text.partition(":")
    return None if name == "no" else {"Name": name, "MaximumRetryCount": int(count or 0)}
