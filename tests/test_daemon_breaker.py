"""The circuit breaker's states."""

from daemon.breaker import BreakerState, CircuitBreaker


class Ticker:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_opens_after_threshold_consecutive_failures_only():
    breaker = CircuitBreaker(3, monotonic=Ticker())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.open
    assert not breaker.allow()


def test_after_the_cooldown_one_probe_goes_and_decides():
    clock = Ticker()
    breaker = CircuitBreaker(1, monotonic=clock)
    breaker.failure()
    clock.now = 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.failure()  # probe failed: open again, for twice as long
    clock.now = 2.5
    assert not breaker.allow()
    clock.now = 3.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.closed
    assert breaker.allow()
