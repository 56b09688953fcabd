"""A real Triton Inference Server for tests and benchmarks, from the ``nvidia-pytriton`` wheel.

The wheel carries a ``tritonserver`` binary (Triton 2.5x) with the Python backend only, so the
repositories served here use Python-backend models (tests wrap the project's ONNX files in a
``model.py`` that runs onnxruntime). Production images run Triton's own onnxruntime backend on
the same repository layout; the client side under test is identical.

Use it as a context manager in scripts::

    with running_triton(repository) as triton:
        print(triton.http_url, triton.grpc_url)

or as a pytest plugin: override the ``triton_model_repository`` fixture (session scope) with the
repository to serve and ask for ``triton_server``.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from finprint_testing.processes import ServerProcess, free_port


@dataclass(frozen=True)
class TritonEndpoints:
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        """``host:port`` as tritonclient wants it (no scheme)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def is_ready(self) -> bool:
        """Server ready means every model in the repository loaded (the default load policy)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False


def _pytriton_server_dir() -> Path:
    try:
        import pytriton
    except ModuleNotFoundError as exc:  # the dev extra brings it
        raise RuntimeError("Triton for tests comes from `nvidia-pytriton` (the dev extra): pip install nvidia-pytriton") from exc
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _prepare_backends(server_dir: Path, workdir: Path) -> Path:
    """Triton wants the Python backend stub of OUR interpreter version next to the backend."""
    backends = workdir / "backends"
    shutil.copytree(server_dir / "backends", backends)
    shutil.copytree(server_dir / "caches", workdir / "caches")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
    return backends


def _server_environment() -> dict[str, str]:
    """Library path for the bundled server, and the venv for the Python-backend stubs.

    Without the interpreter's libpython and the wheel's own libraries on LD_LIBRARY_PATH the
    server does not fail: it hangs with the models in "loading"; hence the readiness timeout.
    """
    site_packages = _site_packages()
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(site_packages / "nvidia_pytriton.libs")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")]).rstrip(
        os.pathsep
    )
    # The stub's embedded interpreter finds its prefix through the ``python`` on PATH, so with this
    # environment's bin first, model.py files import numpy (<2) and onnxruntime from here.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@contextmanager
def running_triton(model_repository: Path, *, ready_timeout_s: float = 120.0,
                   extra_args: tuple[str, ...] = ()) -> Iterator[TritonEndpoints]:
    """Start ``tritonserver`` on free loopback ports serving ``model_repository``; stop it on exit."""
    server_dir = _pytriton_server_dir()
    with tempfile.TemporaryDirectory(prefix="finprint-triton-") as tmp:
        workdir = Path(tmp)
        backends = _prepare_backends(server_dir, workdir)
        endpoints = TritonEndpoints(free_port(), free_port(), free_port(), workdir / "tritonserver.log")
        argv = [
            str(server_dir / "bin" / "tritonserver"),
            f"--model-repository={Path(model_repository).resolve()}",
            f"--backend-directory={backends}",
            f"--cache-directory={workdir / 'caches'}",
            "--http-address=127.0.0.1", f"--http-port={endpoints.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={endpoints.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={endpoints.metrics_port}",
            "--allow-sagemaker=false", "--allow-vertex-ai=false",
            "--exit-on-error=true", "--strict-readiness=true",
            *extra_args,
        ]
        server = ServerProcess("tritonserver", argv, endpoints.log_path, env=_server_environment(), cwd=workdir)
        try:
            server.wait_ready(endpoints.is_ready, ready_timeout_s)
            yield endpoints
        finally:
            server.stop()


# --- pytest plugin -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def triton_model_repository() -> Path:
    """The repository ``triton_server`` serves; test packages override this fixture."""
    pytest.fail(
        "override the `triton_model_repository` fixture with a repository of Python-backend models: "
        "the Triton from nvidia-pytriton has no onnxruntime backend",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def triton_server(triton_model_repository: Path) -> Iterator[TritonEndpoints]:
    with running_triton(triton_model_repository) as endpoints:
        yield endpoints
