"""The daemon's Prometheus metrics (prometheus-client), served on NOTIFY_METRICS_PORT.

Each worker gets its own registry so that several workers in one process (tests) do not
collide; the CLI serves the registry of the process's one worker. Each registry also
holds the standard ``process_*`` and ``python_*`` series and ``notifyctl_build_info``
(``notifyctl.metrics``). ``docs/metrics.md`` lists every metric with its labels.
"""

from loguru import logger
from prometheus_client import Counter, Gauge, Histogram

from daemon.breaker import BreakerState
from notifyctl import metrics
from notifyctl.models import FINAL_STATUSES
from notifyctl.services.delivery import AttemptRecord

#: Request durations: the mock answers in ms, a slow real API in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def error_kind(attempt: AttemptRecord) -> str:
    """What went wrong with a failed request, as a small fixed set of label values."""
    status, error = attempt.http_status, attempt.error or ""
    if status is None:
        return "timeout" if error.startswith("timed out") else "connection"
    if status == 200:
        return "garbage" if error.startswith("malformed") else "rejected"
    if status == 401:
        return "unauthorized"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "rejected" if 400 <= status < 500 else "unexpected"


class DaemonMetrics:
    """Counters, gauges and histograms of one worker."""

    def __init__(self) -> None:
        self.registry = registry = metrics.registry()
        self.messages = Counter(
            "notifyctl_messages",
            "Messages this daemon brought to a final status",
            ["status"],
            registry=registry,
        )
        self.requests = Counter(
            "notifyctl_sender_requests", "Requests made to the sending API", registry=registry
        )
        self.send_seconds = Histogram(
            "notifyctl_send_duration_seconds",
            "Duration of one request to the sending API",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "notifyctl_sender_errors",
            "Failed requests to the sending API, by kind",
            ["kind"],
            registry=registry,
        )
        self.retries = Counter(
            "notifyctl_retries",
            "Requests that repeat an earlier failed request of the same message",
            registry=registry,
        )
        # A state set in the usual shape: one series per state, label `state`, 1 for the
        # current one. (prometheus-client's Enum names the label after the metric.)
        self.breaker = Gauge(
            "notifyctl_circuit_breaker_state",
            "State of the circuit breaker in front of the sending API: 1 for the current state",
            ["state"],
            registry=registry,
        )
        self.pending = Gauge(
            "notifyctl_pending_messages",
            "Messages of live mailings not yet final (pending or sending), whole database",
            registry=registry,
        )
        self.active = Gauge(
            "notifyctl_active_mailings",
            "Mailings running now (started, not ended, not paused)",
            registry=registry,
        )
        self.takeovers = Counter(
            "notifyctl_lease_takeovers",
            "Messages taken over from a daemon that stopped answering",
            registry=registry,
        )
        self.progress = Gauge(
            "notifyctl_daemon_progress_timestamp_seconds",
            "Unix time at which every loop of this daemon last did its work (claimed, "
            "recorded, or found nothing to do); falling behind means a stall",
            registry=registry,
        )
        self.restarts = Counter(
            "notifyctl_daemon_task_restarts",
            "Background tasks of this daemon restarted after they crashed or ended",
            ["task"],
            registry=registry,
        )
        #: each final status's series, looked up once (``labels`` costs a lock and a dict)
        self._finished = {
            status.value: self.messages.labels(status.value) for status in FINAL_STATUSES
        }
        self.breaker_state(BreakerState.closed)

    def breaker_state(self, current: BreakerState | str) -> None:
        """Set the breaker's series: 1 for ``current``, 0 for the other states."""
        for state in BreakerState:
            self.breaker.labels(state.value).set(1 if state == current else 0)

    def observe(self, attempts: list[AttemptRecord], *, earlier: int, status: str) -> None:
        """Count one message's requests (``earlier`` made before this claim) and outcome."""
        for index, attempt in enumerate(attempts):
            self.requests.inc()
            self.send_seconds.observe(attempt.duration_ms / 1000)
            if attempt.error:
                self.errors.labels(error_kind(attempt)).inc()
            if earlier + index > 0:
                self.retries.inc()
        finished = self._finished.get(status)
        if finished is not None:
            finished.inc()

    def serve(self, host: str, port: int) -> bool:
        """Expose the metrics over HTTP; a taken port is logged, not fatal."""
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            logger.warning(
                "metrics not served on {host}:{port}: {error}", host=host, port=port, error=str(exc)
            )
            return False
        logger.info("metrics on http://{host}:{port}/metrics", host=host, port=port)
        return True
