"""The short chaos run (bench/chaos.py --quick): faults, outages and SIGKILLs, then the books."""

import uuid

import pytest
from sqlalchemy.engine import make_url

from bench import chaos
from notifyctl.db import make_engine
from tests.conftest import POSTGRES_ADMIN_URL


@pytest.fixture
def chaos_database():
    name = f"notifyctl_chaos_{uuid.uuid4().hex[:8]}"
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    admin = make_engine(POSTGRES_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.mark.slow
def test_killed_daemons_and_a_faulty_api_lose_and_duplicate_nothing_beyond_the_kills(
    chaos_database,
):
    result = chaos.run(chaos.QUICK, chaos_database, log=lambda _line: None)
    assert result.kills >= 3, result.summary()  # the run really was chaotic
    assert result.requests > result.plan.messages  # faults made it retry
    assert result.violations == [], result.summary()
    assert result.statuses == {"sent": result.plan.messages}, result.summary()
