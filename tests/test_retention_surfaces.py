"""A pruned mailing shows the same counts everywhere as before pruning: the CLI, the REST
API, the admin UI, the daily report; and ``notifyctl db prune`` itself."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from notifyctl.config import Settings
from tests.factories import add_history, add_mailing

LOGIN = "nfy_login-token-for-tests"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def site(db_url, engine):
    """The REST API and the admin UI, signed in, on the test's database."""
    from web.app import create_app

    settings = Settings(database_url=db_url, segment_price="0.05")
    app = create_app(settings=settings, engine=engine, login_token=LOGIN)
    with TestClient(app) as client:
        assert client.get(f"/admin/login?token={LOGIN}").status_code == 200
        yield client


def shown(cli, site, mailing_id: int) -> dict:
    """Every output that counts the mailing's messages, without what pruning adds."""
    auth = {"Authorization": f"Bearer {LOGIN}"}
    outputs = {
        "stats": json.loads(cli("stats", "--json").stdout),
        "stats ID": json.loads(cli("stats", str(mailing_id), "--json").stdout),
        "GET /stats": site.get("/api/v1/stats", headers=auth).json(),
        "GET /mailings/ID/stats": site.get(
            f"/api/v1/mailings/{mailing_id}/stats", headers=auth
        ).json(),
        # (after the title and the period, which moves with the clock)
        "report": cli("report", "show", "--hours", "720").stdout.splitlines()[2:],
        "report --json": json.loads(cli("report", "show", "--hours", "720", "--json").stdout),
        "UI progress": site.get(
            f"/admin/mailings/{mailing_id}?section=progress", headers=HTMX
        ).text,
        "UI dashboard": site.get("/admin/", headers=HTMX).text,
    }
    outputs["report --json"].pop("since"), outputs["report --json"].pop("until")
    for rows in (outputs["stats"], outputs["GET /stats"]):
        for row in rows:
            row.pop("pruned_at")
    for detail in (outputs["stats ID"], outputs["GET /mailings/ID/stats"]):
        detail.pop("pruned_at"), detail.pop("messages"), detail.pop("messages_total")
    return outputs


def test_a_pruned_mailing_shows_the_same_counts_everywhere(cli, site, session, monkeypatch):
    now = datetime.now(UTC)
    old = add_history(session, ended=now - timedelta(days=10), clients=9)
    live = add_mailing(session, now=now)  # not pruned: its JSON says null
    monkeypatch.setenv("NOTIFY_RETENTION_MESSAGES", "1d")
    monkeypatch.setenv("NOTIFY_SEGMENT_PRICE", "0.05")
    before = shown(cli, site, old.id)
    detail = json.loads(cli("stats", str(old.id), "--json").stdout)
    assert detail["pruned_at"] is None
    assert len(detail["messages"]) == detail["total"] == 9

    result = cli("db", "prune", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["rows"] == {"attempt": 10, "message": 9, "mailing_summary": 1}
    assert printed["mailings"] == [old.id]
    assert printed["size_before"]["bytes"] > 0

    assert shown(cli, site, old.id) == before
    detail = json.loads(cli("stats", str(old.id), "--json").stdout)
    assert (detail["messages"], detail["messages_total"], detail["total"]) == ([], 0, 9)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", detail["pruned_at"])
    rows = {row["mailing_id"]: row for row in json.loads(cli("stats", "--json").stdout)}
    assert rows[old.id]["pruned_at"] == detail["pruned_at"]
    assert rows[live.id]["pruned_at"] is None
    page = site.get(f"/admin/mailings/{old.id}").text
    assert "Message detail was pruned on" in page


def test_a_dry_run_counts_and_changes_nothing(cli, session, monkeypatch):
    old = add_history(session, ended=datetime.now(UTC) - timedelta(days=3), clients=4)
    monkeypatch.setenv("NOTIFY_RETENTION_MESSAGES", "2d")
    dry = cli("db", "prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert re.search(r"message\s*│\s*4", dry.stdout)
    assert "database size" in dry.stderr
    again = json.loads(cli("db", "prune", "--dry-run", "--json").stdout)
    assert again["rows"]["message"] == 4
    assert again["dry_run"] is True
    assert again["size_after"] == again["size_before"]
    assert json.loads(cli("stats", str(old.id), "--json").stdout)["messages_total"] == 4


def test_a_bad_retention_is_one_line_and_a_failure(cli, monkeypatch):
    monkeypatch.setenv("NOTIFY_RETENTION_ATTEMPTS", "a month")
    result = cli("db", "prune")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "NOTIFY_RETENTION_ATTEMPTS" in lines[0]
