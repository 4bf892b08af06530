"""The circuit breaker's states."""

from daemon.breaker import PROBE_TIMEOUT, BreakerState, CircuitBreaker


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


def test_a_probe_that_made_no_request_lets_the_next_one_probe():
    clock = Ticker()
    breaker = CircuitBreaker(1, monotonic=clock)
    breaker.failure()
    clock.now = 1.0
    assert breaker.allow()  # the probe ... whose request never went out (no time left)
    breaker.no_answer()
    assert breaker.probe_due()
    assert breaker.allow()  # a new probe at once, not after a cooldown


def test_a_lost_probe_is_replaced_after_the_probe_timeout():
    clock = Ticker()
    breaker = CircuitBreaker(1, monotonic=clock)
    breaker.failure()
    clock.now = 1.0
    assert breaker.allow()
    clock.now = 1.0 + PROBE_TIMEOUT / 2
    assert not breaker.allow()
    assert not breaker.probe_due()
    clock.now = 2.0 + PROBE_TIMEOUT
    assert breaker.probe_due()
    assert breaker.allow()


def test_no_answer_while_closed_changes_nothing():
    breaker = CircuitBreaker(3, monotonic=Ticker())
    breaker.no_answer()
    assert breaker.state is BreakerState.closed
