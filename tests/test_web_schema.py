"""Property-based: schemathesis throws generated requests at every route of our OpenAPI
document; no answer may be a 5xx, and every answer must match the documented schema.

Driven with hypothesis directly: schemathesis's pytest plugin does not load under
pytest 9 (it reads a removed private attribute, ``Function._nodeid``).
"""

import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, given, settings

from notifyctl.config import Settings
from web.app import create_app

LOGIN = "nfy_schemathesis-login-token"
# "Schema-valid data must be accepted" cannot hold: the schema says a phone is a string,
# the service then refuses strings that are not phone numbers (422, the field named).
BUSINESS_RULES = schemathesis.checks.positive_data_acceptance
AUTH = {"Authorization": f"Bearer {LOGIN}"}


def test_every_route_answers_within_its_schema(db_url, engine):
    """On PostgreSQL too: it refuses what SQLite stores (a NUL in text, say)."""
    app = create_app(settings=Settings(database_url=db_url), engine=engine, login_token=LOGIN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers=AUTH, excluded_checks=[BUSINESS_RULES])

        conforms()
