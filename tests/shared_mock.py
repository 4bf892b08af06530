"""One mock sending API per test module, fresh for each test: for tests that make a few
requests each, where starting a mock per test would cost most of their time.

A module uses it by overriding conftest's ``mock_api``::

    @pytest.fixture(scope="module")
    def module_mock():
        yield from shared_mock.serve()


    @pytest.fixture
    def mock_api(module_mock):
        return shared_mock.fresh(module_mock)
"""

from collections.abc import Iterator

import httpx

from tests.daemon_helpers import AUTH, MockApi

#: The faults a test may set, at their start-up values.
NO_FAULTS = {"latency_ms": 0, "jitter_ms": 0, "error_rate": 0, "garbage_rate": 0, "drop_rate": 0}


def serve() -> Iterator[MockApi]:
    from mock import server
    from tests.servers import running

    with running(server.config(seed=7)) as url:
        yield MockApi(url)


def fresh(mock: MockApi) -> MockApi:
    """``mock`` with no faults and nothing received."""
    mock.faults(**NO_FAULTS)
    httpx.delete(f"{mock.base_url}/v1/_received", headers=AUTH).raise_for_status()
    return mock
