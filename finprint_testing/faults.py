"""Parts of a running system that tests can break and bring back: kill -9 a service and restart it on
the same port with the same storage, stop a private PostgreSQL or S3 server and start it again, give a
process a tiny filesystem to fill.

Everything listens on 127.0.0.1 and is stopped by PID (its process group), like the rest of
``finprint_testing``. The PostgreSQL cluster and the S3 server here are private to the caller (their
own data folders and free ports), never the machine's shared server, so stopping them breaks nobody
else's tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from finprint.services import BUILD_ORDER
from finprint_testing.postgres import PostgresServer, initialised_cluster
from finprint_testing.processes import ServerProcess
from finprint_testing.s3 import S3Server, weed_mini
from finprint_testing.system import peer_wiring, ready, serve_argv, service_addresses


ServerT = TypeVar("ServerT")


class RestartableProcess:
    """A server started from a fixed command line, which can be killed (any signal) and started again.

    Each start appends to the same log file; a restart reuses the command, environment and port.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, ready: Callable[[], bool],
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 stop_signal: signal.Signals = signal.SIGTERM) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.ready = ready
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.process: ServerProcess | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    def start(self, timeout_s: float = 120.0) -> None:
        assert not self.running, f"{self.name} is already running"
        self.process = ServerProcess(self.name, self.argv, self.log_path, env=self.env, cwd=self.cwd)
        self.starts += 1
        self.process.wait_ready(self.ready, timeout_s)

    def kill(self, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 30.0) -> None:
        """Send ``sig`` to the whole process group and wait until the server has exited."""
        assert self.process is not None and self.running, f"{self.name} is not running"
        os.killpg(self.process.pid, sig)
        self.process.proc.wait(timeout_s)
        self.process.stop()  # closes the log handle; the process is gone already

    def stop(self, timeout_s: float = 30.0) -> None:
        """A clean stop with ``stop_signal`` (SIGKILL after ``timeout_s``); nothing if not running."""
        if self.process is None:
            return
        if self.running:
            try:
                os.killpg(self.process.pid, self.stop_signal)
                self.process.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.proc.wait(timeout_s)
            except ProcessLookupError:
                pass
        self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process is not None else ""


# -- PostgreSQL and S3 -----------------------------------------------------------------------------


@dataclass
class PrivateServer(Generic[ServerT]):
    """A server of one's own (its own data folder and free ports) whose process can be stopped or
    killed and started again on the same port with the same data."""

    server: ServerT
    process: RestartableProcess

    def stop(self) -> None:
        """A clean stop with the process's stop signal."""
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def start(self) -> None:
        self.process.start(timeout_s=60)


PrivatePostgres = PrivateServer[PostgresServer]
"""``stop()`` is PostgreSQL's fast shutdown (SIGINT: clients disconnected, a clean checkpoint)."""
PrivateS3 = PrivateServer[S3Server]
"""``weed mini``; ``kill()`` then ``start()`` keeps its data."""


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    with initialised_cluster("finprint-fault-pg-", "max_connections=200") as cluster:
        process = RestartableProcess("postgres", cluster.argv, cluster.workdir / "postgres.log",
                                     cluster.server.answers, stop_signal=signal.SIGINT)
        process.start(timeout_s=60)
        try:
            yield PrivateServer(cluster.server, process)
        finally:
            process.stop()


@contextmanager
def private_s3() -> Iterator[PrivateS3]:
    workdir = Path(tempfile.mkdtemp(prefix="finprint-fault-s3-"))
    weed = weed_mini(workdir, "finprint-fault")
    process = RestartableProcess("weed-mini", weed.argv, workdir / "weed.log", weed.server.answers, env=weed.env,
                                 cwd=workdir)
    try:
        process.start(timeout_s=60)
        yield PrivateServer(weed.server, process)
    finally:
        process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- a tiny filesystem --------------------------------------------------------------------------------


@contextmanager
def tiny_filesystem(size_bytes: int) -> Iterator[Path]:
    """A folder on a tmpfs of ``size_bytes`` (``mount -t tmpfs -o size=...``), unmounted at the end.

    Needs the right to mount (root, or CAP_SYS_ADMIN): a RuntimeError says so otherwise, rather
    than a test silently writing to an unbounded disk.
    """
    folder = Path(tempfile.mkdtemp(prefix="finprint-tiny-fs-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0777", "tmpfs", str(folder)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        folder.rmdir()
        raise RuntimeError(f"cannot mount a {size_bytes}-byte tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def fill(folder: Path, name: str = "ballast", *, leave_bytes: int = 0) -> Path:
    """Write zeros into ``folder/name`` until its filesystem has at most ``leave_bytes`` free (0: full)."""
    path = folder / name
    with open(path, "wb", buffering=0) as handle:
        for chunk in (1 << 20, 65536, 4096, 512):
            try:
                while shutil.disk_usage(folder).free - chunk >= leave_bytes:
                    handle.write(b"\0" * chunk)
            except OSError:
                pass  # full already
    return path


# -- the five services ------------------------------------------------------------------------------


@dataclass
class FaultableSystem:
    """The five services as separate processes that can each be killed and restarted on their port."""

    urls: dict[str, str]
    services: dict[str, RestartableProcess] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.urls["gateway"]

    def kill(self, name: str) -> None:
        self.services[name].kill(signal.SIGKILL)

    def restart(self, name: str, timeout_s: float = 120.0) -> None:
        self.services[name].start(timeout_s)


@contextmanager
def faultable_services(env: Mapping[str, str], log_dir: Path,
                       per_service_env: Mapping[str, Mapping[str, str]] | None = None,
                       timeout_s: float = 120.0) -> Iterator[FaultableSystem]:
    """Like :func:`finprint_testing.system.separate_services`, with processes that can be restarted.

    ``env`` carries the storage settings; peer URLs are added here. ``per_service_env`` adds
    variables to one service only (e.g. the matcher's own object store).
    """
    ports, urls = service_addresses()
    wiring = peer_wiring(urls)
    system = FaultableSystem(urls)
    with ExitStack() as stack:
        for name in BUILD_ORDER:
            process = RestartableProcess(
                name, serve_argv(name, ports[name]), log_dir / f"{name}.log", lambda u=urls[name]: ready(u),
                env={**os.environ, **wiring, **env, **((per_service_env or {}).get(name, {}))},
            )
            stack.callback(process.stop)
            system.services[name] = process
            process.process = ServerProcess(name, process.argv, process.log_path, env=process.env)
            process.starts = 1
        deadline = time.monotonic() + timeout_s
        for process in system.services.values():
            assert process.process is not None
            process.process.wait_ready(process.ready, max(1.0, deadline - time.monotonic()))
        yield system
