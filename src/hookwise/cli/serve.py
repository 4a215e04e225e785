"""`hookwise serve` and `hookwise worker`: the long-running processes."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import sys

import click
import uvicorn
import uvloop

from hookwise.cli.common import (
    config_option,
    log_to_stderr,
    main,
    service_for,
)
from hookwise.connections import protocol_for
from hookwise.errors import HookwiseError
from hookwise.processes import listen_for_wakes
from hookwise.service import Hookwise

log = logging.getLogger("hookwise")


@main.command()
@config_option
@click.option("--listen", help="host:port, overriding `listen` in the config.")
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    help="Worker processes to execute runs, overriding worker.processes (0: this process).",
)
def serve(config_path: str, listen: str | None, workers: int | None) -> None:
    """Receive webhooks and run the rules' actions."""
    log_to_stderr()
    service = service_for(config_path, strict=True)
    if workers is not None:
        service.config.worker.processes = workers
    host, _, port = (listen or service.config.listen).rpartition(":")
    host = host.strip("[]")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise click.BadParameter(f"expected host:port, got {listen!r}", param_hint="--listen")
    config = service.config
    unguarded = config.api_token is None and not config.access
    if unguarded and not config.allow_unauthenticated_api and not _loopback(host):
        click.echo(
            f"error: refusing to listen on {host}:{port} without api_token: anyone who can reach "
            "it could read the event history and replay events. Set api_token (e.g. "
            "`api_token: ${HOOKWISE_API_TOKEN}`), listen on 127.0.0.1, or set "
            "allow_unauthenticated_api: true to serve the API open on purpose.",
            err=True,
        )
        sys.exit(1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and
    # without it every answer on a kept-alive connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    from hookwise.app import create_app

    shown = f"[{host}]" if family == socket.AF_INET6 else host

    def ready() -> None:
        click.echo(f"hookwise listening on http://{shown}:{bound_port}", err=True)

    app = create_app(service, on_ready=ready)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=protocol_for(service.config.server),
            loop="uvloop",
            log_level="warning",
            access_log=False,
            lifespan="on",
            log_config=None,  # uvicorn's lines go through hookwise's masked handler too
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()  # uvicorn leaves it open when the service fails to start


def _loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1, or localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@config_option
@click.option("--wake-on-stdin", is_flag=True, hidden=True, help="Started by `serve`.")
def worker(config_path: str, wake_on_stdin: bool) -> None:
    """Execute runs without receiving webhooks: one more process on a shared store."""
    log_to_stderr()
    service = service_for(config_path, strict=True)
    try:
        uvloop.run(_work(service, wake_on_stdin))  # the loop `serve` runs on too
    except HookwiseError as exc:
        log.error("hookwise cannot start: %s", exc)
        sys.exit(1)


async def _work(service: Hookwise, wake_on_stdin: bool) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop it as `serve` does."""
    await service.start(watch=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if wake_on_stdin:
        listen_for_wakes(service.wake, stop.set)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP reloads the rules of `serve`; a worker executes the snapshots runs carry.
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a worker has no rules to reload")
    )
    log.info("hookwise worker running; SIGTERM or Ctrl-C stops it")
    try:
        await stop.wait()
        log.info("stopping: finishing the runs under way")
    finally:
        await service.stop()
