"""Processes for benchmarks: timed children with their peak memory, a mock on a port."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.loadgen import DEMO_TOKEN

AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  #: user + system CPU time of the child (from wait4)


def notifyctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "notifyctl", *args]


def timed(command: list[str], *, env: dict | None = None) -> Run:
    """Run ``command`` to its end; wall time, peak RSS and CPU time of that child.

    The peak is the child's own VmHWM, read while it runs: wait4's ``ru_maxrss`` keeps
    the high-water mark across ``exec``, so it would report the benchmark's own memory
    (the process the child was forked from) whenever that is larger.
    """
    out_path, err_path = f"/tmp/bench-{os.getpid()}.out", f"/tmp/bench-{os.getpid()}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path) as out, open(err_path) as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, (peak_kb or usage.ru_maxrss) / 1024, child.returncode, stdout, stderr, cpu)


def _vm_hwm_kb(pid: int) -> int:
    """A running process's peak resident memory so far (kB); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mock:
    def __init__(self, port: int, pid: int | None = None) -> None:
        self.port = port
        self.pid = pid
        self.base = f"http://127.0.0.1:{port}"
        self.send_url = f"{self.base}/v1/send"

    def received(self, **params) -> dict:
        return httpx.get(
            f"{self.base}/v1/_received", params=params, headers=AUTH, timeout=60
        ).json()

    def all_received(self) -> list[dict]:
        """Every entry of the received log, a page at a time."""
        items: list[dict] = []
        while True:
            page = self.received(limit=100_000, offset=len(items))
            items += page["items"]
            if len(items) >= page["total"] or not page["items"]:
                return items

    def forget(self) -> None:
        httpx.delete(f"{self.base}/v1/_received", headers=AUTH).raise_for_status()

    def peak_rss_mb(self) -> float:
        """The mock process's peak resident memory (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def faults(self, **changes) -> None:
        httpx.put(f"{self.base}/v1/_faults", json=changes, headers=AUTH).raise_for_status()


@contextmanager
def mock_process(*options: str):
    """The mock as a child process on a free port."""
    port = free_port()
    child = subprocess.Popen(
        notifyctl("mock", "--port", str(port), *options),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or child.poll() is not None:
                child.kill()
                raise RuntimeError("the mock did not start") from None
            time.sleep(0.1)
    try:
        yield Mock(port, child.pid)
    finally:
        child.terminate()
        child.wait(10)


def wait_http(url: str, *, seconds: float = 30.0) -> None:
    """Return once ``url`` answers at all; raise after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.1)
