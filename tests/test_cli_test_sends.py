"""``notifyctl mailing test ID --phone P`` against the real mock, on SQLite and PostgreSQL."""

import json

import pytest

from notifyctl.config import get_settings
from tests import shared_mock


@pytest.fixture(scope="module")
def module_mock():
    yield from shared_mock.serve()


@pytest.fixture
def mock_api(module_mock):
    """One mock for the module (a test makes a request or two), fresh for each test."""
    return shared_mock.fresh(module_mock)


#: For what does not depend on the database (refused before it is asked): one is enough.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def sending_to(monkeypatch):
    """Point the CLI's sending API at ``mock`` (with ``token``, when given)."""

    def point(mock, token: str | None = None) -> None:
        monkeypatch.setenv("NOTIFY_SENDER_URL", mock.send_url)
        monkeypatch.setenv("NOTIFY_REQUEST_TIMEOUT", "5")
        if token is not None:
            monkeypatch.setenv("NOTIFY_SENDER_TOKEN", token)
        get_settings.cache_clear()

    return point


def create(cli, text: str = "Sale") -> int:
    result = cli("mailing", "create", "--text", text, "--start", "now", "--end", "now+1h")
    assert result.exit_code == 0, result.stderr
    return int(result.stdout)


def test_a_test_send_prints_the_apis_answer(cli, mock_api, sending_to):
    sending_to(mock_api)
    mailing_id = create(cli, "Привет")

    result = cli("mailing", "test", str(mailing_id), "--phone", "+7 (916) 123-45-67")

    assert result.exit_code == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.endswith("to 79161234567: accepted")
    assert "HTTP status  200" in rest[0]
    (received,) = mock_api.received()
    assert (received["phone"], received["text"]) == (79161234567, "Привет")
    assert first == f"test send {received['msg_id']} to 79161234567: accepted"


def test_json_is_what_the_rest_api_returns(cli, mock_api, sending_to):
    sending_to(mock_api)
    mailing_id = create(cli)

    result = cli("mailing", "test", str(mailing_id), "--phone", "79161234567", "--json")

    data = json.loads(result.stdout)
    assert set(data) == {
        "id",
        "mailing_id",
        "phone",
        "at",
        "accepted",
        "http_status",
        "response_excerpt",
        "duration_ms",
        "error",
    }
    assert (data["mailing_id"], data["accepted"], data["http_status"], data["error"]) == (
        mailing_id,
        True,
        200,
        None,
    )
    assert data["id"] == mock_api.received()[0]["msg_id"]


def test_it_is_not_counted_in_the_mailings_statistics(cli, mock_api, sending_to):
    sending_to(mock_api)
    cli("client", "create", "--phone", "79160000001")
    mailing_id = create(cli)
    cli("mailing", "test", str(mailing_id), "--phone", "79161234567")

    stats = json.loads(cli("stats", str(mailing_id), "--json").stdout)

    assert stats["total"] == 0  # not yet activated: no daemon ran; the test send is no message
    assert stats["messages"] == []


def test_an_api_error_is_shown_and_exits_6(cli, mock_api, sending_to):
    sending_to(mock_api)
    mock_api.faults(error_rate=1)
    mailing_id = create(cli)

    result = cli("mailing", "test", str(mailing_id), "--phone", "79161234567", "--json")

    assert result.exit_code == 6
    data = json.loads(result.stdout)
    assert data["accepted"] is False
    assert data["http_status"] >= 500
    assert result.stderr.startswith("error: the sending API did not accept test send")
    assert "Traceback" not in result.stderr


def test_a_wrong_token_is_shown_as_a_401_and_exits_6(cli, mock_api, sending_to):
    sending_to(mock_api, token="not-the-mocks-token")
    mailing_id = create(cli)

    result = cli("mailing", "test", str(mailing_id), "--phone", "79161234567")

    assert result.exit_code == 6
    assert "HTTP status  401" in result.stdout
    assert "HTTP 401: the API refused our token" in result.stderr


@SQLITE_ONLY
def test_a_bad_or_missing_phone_is_refused_naming_the_option(cli, mock_api, sending_to):
    sending_to(mock_api)
    mailing_id = create(cli)

    for args in (["--phone", "12345"], ["--phone", "89161234567"], ["--phone", ""], []):
        result = cli("mailing", "test", str(mailing_id), *args)
        assert result.exit_code == 2, args
        assert "--phone" in result.stderr
        assert "Traceback" not in result.stderr

    assert mock_api.received() == []


@SQLITE_ONLY
def test_an_unknown_mailing_exits_3_and_sends_nothing(cli, mock_api, sending_to):
    sending_to(mock_api)

    result = cli("mailing", "test", "999", "--phone", "79161234567")

    assert result.exit_code == 3
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert line.endswith("no mailing with id 999")
    assert mock_api.received() == []


def test_the_api_never_sees_a_test_sends_id_again_from_the_daemon(
    cli, db_url, mock_api, sending_to
):
    """Test sends before and after a mailing's messages are sent: every id reaches the
    mock once, so none of them would be dropped as a repeat (the idempotency key)."""
    from tests.daemon_helpers import run_worker, settings_for

    sending_to(mock_api)
    for n in range(3):
        cli("client", "create", "--phone", f"7916000000{n}")
    mailing_id = create(cli)
    before = json.loads(
        cli("mailing", "test", str(mailing_id), "--phone", "79161234567", "--json").stdout
    )

    run_worker(settings_for(db_url, mock_api))
    after = json.loads(
        cli("mailing", "test", str(mailing_id), "--phone", "79161234567", "--json").stdout
    )

    received = mock_api.received()
    assert len(received) == 5
    assert all(item["count"] == 1 and item["accepted"] == 1 for item in received)
    stats = json.loads(cli("stats", str(mailing_id), "--json").stdout)
    assert stats["by_status"]["sent"] == stats["total"] == 3
    message_ids = {message["id"] for message in stats["messages"]}
    assert {before["id"], after["id"]}.isdisjoint(message_ids)


# --- mailing tests: the list ----------------------------------------------------------


def test_tests_lists_them_newest_first_as_the_sends_printed_them(cli, mock_api, sending_to):
    sending_to(mock_api)
    mailing_id = create(cli)
    sent = [
        json.loads(cli("mailing", "test", str(mailing_id), "--phone", phone, "--json").stdout)
        for phone in ("79161234567", "79161234568")
    ]

    listed = cli("mailing", "tests", str(mailing_id), "--json")
    table = cli("mailing", "tests", str(mailing_id), "--limit", "1")

    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == {"total": 2, "limit": 100, "offset": 0, "items": sent[::-1]}
    assert table.exit_code == 0, table.stderr
    assert "79161234568" in table.stdout
    assert "79161234567" not in table.stdout
    assert "1-1 of 2 (next: --offset 1)" in table.stdout


@SQLITE_ONLY
def test_tests_of_an_unknown_mailing_or_with_a_bad_limit_are_refused(cli):
    unknown = cli("mailing", "tests", "999")
    bad_limit = cli("mailing", "tests", str(create(cli)), "--limit", "0")

    assert unknown.exit_code == 3
    assert unknown.stderr.strip().endswith("no mailing with id 999")
    assert bad_limit.exit_code == 2
    (line,) = bad_limit.stderr.splitlines()
    assert "--limit" in line
