"""The API under hostile bodies: its memory for a 100 MB body, /healthz during a big UI import.

Each figure comes from `notifyctl api` as a child process, driven over real sockets:

- a 100 MB body is streamed to ``POST /api/v1/clients`` (anonymous and signed in, with a
  ``Content-Length`` and chunked); the sender stops as soon as an answer arrives, and the
  API's peak resident memory (VmHWM) is compared with its memory just before;
- a 200,000-row CSV is imported through the admin UI while ``/healthz`` is asked every
  20 ms: the slowest answer is the figure.
"""

import re
import select
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench import data
from bench.common import POSTGRES, Row, env_for
from bench.runner import free_port, notifyctl, wait_http

TOKEN = "nfy_bench-login-token-for-limits"
BODY_BYTES = 100 * 1024 * 1024
CHUNK = 64 * 1024
IMPORT_ROWS = {"full": 200_000, "small": 20_000}
HEALTH_EVERY = 0.02  # seconds between two /healthz probes


@dataclass
class Api:
    base: str
    port: int
    pid: int

    def memory_mb(self, field: str = "VmRSS") -> float:
        """The API process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def reset_peak(self) -> None:
        """Start VmHWM afresh from the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")


@contextmanager
def api_process(url: str):
    """`notifyctl api` on a free port over the database at ``url``."""
    port = free_port()
    env = env_for(url, NOTIFY_LOGIN_TOKEN=TOKEN)
    child = subprocess.Popen(
        notifyctl("api", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        yield Api(base, port, child.pid)
    finally:
        child.terminate()
        child.wait(10)


def stream_body(
    port: int, path: str, *, total: int, chunked: bool, headers: dict[str, str]
) -> tuple[int | None, int]:
    """POST ``total`` bytes of a JSON string to ``path``; (status, bytes sent before it came).

    Sending stops as soon as the server answers or closes, as a careful client would.
    """
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    filler = b"x" * CHUNK
    answer, sent = b"", 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = b""
        while True:
            if not pending and sent < total:
                piece = filler[: min(CHUNK, total - sent)]
                if sent == 0:
                    piece = b'{"tag":"' + piece[8:]
                if sent + len(piece) == total:
                    piece = piece[:-2] + b'"}'
                sent += len(piece)
                pending = (b"%x\r\n%s\r\n" % (len(piece), piece)) if chunked else piece
                if chunked and sent == total:
                    pending += b"0\r\n\r\n"
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 30)
            if readable:
                try:
                    more = sock.recv(65536)
                except ConnectionResetError:
                    more = b""
                answer += more
                if not more or b"\r\n\r\n" in answer:
                    break
            elif writable:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    break
            elif not readable:
                break  # 30 s of silence: the figure shows no status
    status = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return (int(status.group(1)) if status else None), sent


def _huge_body(url: str, *, signed: bool, chunked: bool) -> Row:
    with api_process(url) as api:
        # Warm up (imports, the first connection, one real client) before the baseline.
        headers = {"Authorization": f"Bearer {TOKEN}"}
        httpx.post(f"{api.base}/api/v1/clients", json={"phone": "79160000001"}, headers=headers)
        time.sleep(0.5)
        api.reset_peak()
        before = api.memory_mb()
        status, sent = stream_body(
            api.port,
            "/api/v1/clients",
            total=BODY_BYTES,
            chunked=chunked,
            headers=headers if signed else {},
        )
        time.sleep(0.5)  # let whatever is still reading finish
        peak = api.memory_mb("VmHWM")
    who = "signed-in" if signed else "anonymous"
    how = "chunked" if chunked else "with Content-Length"
    return (
        f"API memory for a 100 MB {who} `POST /api/v1/clients` body, {how}",
        "< 20 MB more; 401 or 413",
        f"+{peak - before:.1f} MB (peak {peak:.0f} MB); answered {status} "
        f"after {sent / 2**20:,.1f} MB of the body was sent",
        "python -m bench --only limits",
    )


def _sign_in(client: httpx.Client) -> str:
    page = client.get(f"/admin/login?token={TOKEN}", follow_redirects=True)
    page.raise_for_status()
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _healthz_during_import(url: str, rows: int, backend: str, csv_path: Path, size: str) -> Row:
    with api_process(url) as api:
        outcome: dict = {}

        def upload() -> None:
            with httpx.Client(base_url=api.base, timeout=600) as browser:
                csrf = _sign_in(browser)
                started = time.perf_counter()
                with csv_path.open("rb") as handle:
                    answer = browser.post(
                        "/admin/clients/import",
                        data={"csrf_token": csrf},
                        files={"file": ("clients.csv", handle, "text/csv")},
                    )
                outcome["seconds"] = time.perf_counter() - started
                found = re.search(r'data-imported="(\d+)"', answer.text)
                outcome["status"] = answer.status_code
                outcome["imported"] = int(found.group(1)) if found else 0

        durations = []
        importer = threading.Thread(target=upload)
        with httpx.Client(base_url=api.base, timeout=60) as probe:
            probe.get("/healthz").raise_for_status()
            importer.start()
            while importer.is_alive():
                began = time.perf_counter()
                probe.get("/healthz").raise_for_status()
                durations.append(time.perf_counter() - began)
                time.sleep(HEALTH_EVERY)
        importer.join()
    durations.sort()
    median = durations[len(durations) // 2] * 1000
    return (
        f"`GET /healthz` during a {rows:,}-row CSV import in the admin UI, {backend}",
        "every answer < 100 ms",
        f"slowest {durations[-1] * 1000:.0f} ms, median {median:.0f} ms over {len(durations)} "
        "probes; "
        f"the import: {outcome.get('status')}, {outcome.get('imported', 0):,} rows "
        f"in {outcome.get('seconds', float('nan')):.1f} s",
        f"python -m bench --only limits --size {size}",
    )


def bench_limits(size: str, work: Path) -> list[Row]:
    url = data.fresh_database(f"sqlite:///{work / 'limits.db'}")
    rows = [
        _huge_body(url, signed=False, chunked=False),
        _huge_body(url, signed=False, chunked=True),
        _huge_body(url, signed=True, chunked=False),
        _huge_body(url, signed=True, chunked=True),
    ]
    count = IMPORT_ROWS[size]
    csv_path = data.write_csv(work / "ui-import.csv", count)
    # A database of its own: other parts (or other checkouts) may use the shared one.
    postgres = make_url(POSTGRES).set(database="notifyctl_bench_limits")
    backends = (
        ("SQLite", f"sqlite:///{work / 'ui-import.db'}"),
        ("PostgreSQL", postgres.render_as_string(hide_password=False)),
    )
    for backend, url in backends:
        data.fresh_database(url)
        rows.append(_healthz_during_import(url, count, backend, csv_path, size))
    return rows
