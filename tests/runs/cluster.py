"""A real two-node Ray cluster on this machine, for the tests that need one: a head node with no CPUs
(so all work goes to the worker node) and a worker node started with ``ray start`` in its own
temporary folder, working directory and vector cache, without the data folder's environment
variable."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_processes_mentioning(marker: str) -> None:
    """Stop this cluster's processes only (``ray stop`` would stop every Ray on the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        found = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found = True
                try:
                    os.kill(int(proc.name), sig)
                except ProcessLookupError:
                    pass
        if not found:
            return
        time.sleep(2)


def _wait_for_cpus(address: str, env: dict, cpus: float, timeout: float = 180) -> None:
    """Until ``ray status`` answers (and, for ``cpus`` > 0, counts that many CPUs)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True)
        if out.returncode == 0 and (not cpus or f"/{cpus:.1f} CPU" in out.stdout):
            return
        time.sleep(2)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {cpus} CPUs: {out.stdout}{out.stderr}")


@pytest.fixture
def two_node_cluster():
    if shutil.which(RAY) is None:
        pytest.skip("no ray command beside this Python")
    # short folders: Ray's unix sockets live under the temporary folder
    head_dir, worker_dir = Path(tempfile_dir("rh")), Path(tempfile_dir("rw"))
    env = {k: v for k, v in os.environ.items() if k != "STEER_DATA_DIR"}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{_free_port()}"
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
    procs = [
        subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                f"--port={address.split(':')[1]}",
                "--num-cpus=0",
                f"--temp-dir={head_dir}",
                "--include-dashboard=false",
                *common,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        _wait_for_cpus(address, env, 0.0)
        (worker_dir / "cwd").mkdir()
        worker_env = env | {"STEER_CACHE_DIR": str(worker_dir / "cache")}
        procs.append(
            subprocess.Popen(
                [RAY, "start", f"--address={address}", "--num-cpus=1", f"--temp-dir={worker_dir / 'tmp'}", *common],
                env=worker_env,
                cwd=worker_dir / "cwd",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        _wait_for_cpus(address, env, 1.0)
        yield address, worker_dir, env
    finally:
        for p in procs:
            p.terminate()
        for d in (head_dir, worker_dir):
            _kill_processes_mentioning(str(d))
            shutil.rmtree(d, ignore_errors=True)


def tempfile_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")
