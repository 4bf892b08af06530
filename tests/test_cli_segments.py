"""SMS segments and cost on the command line: create, dry run, stats, on both databases."""

import json

import pytest

from notifyctl.config import get_settings

TIMES = ("--start", "now", "--end", "now+1h")
TWO_SEGMENTS = "a" * 160 + "€"  # 162 septets
SEGMENTS_OF_TWO = {"encoding": "GSM-7", "characters": 162, "segments": 2}


@pytest.fixture
def price(monkeypatch):
    """NOTIFY_SEGMENT_PRICE=0.05 for the commands the test runs."""
    monkeypatch.setenv("NOTIFY_SEGMENT_PRICE", "0.05")
    get_settings.cache_clear()


def add_clients(cli, count: int) -> None:
    for n in range(count):
        assert cli("client", "create", "--phone", f"7916000000{n}").exit_code == 0


def test_create_says_the_segments_on_stderr_and_prints_only_the_id(cli):
    created = cli("mailing", "create", "--text", TWO_SEGMENTS, *TIMES)
    assert created.exit_code == 0
    assert created.stdout == "1\n"
    assert "mailing 1: 2 SMS segments (GSM-7, 162 characters)" in created.stderr


def test_every_mailing_json_carries_its_segments(cli):
    created = json.loads(cli("mailing", "create", "--text", "Привет", *TIMES, "--json").stdout)
    assert created["segments"] == {"encoding": "UCS-2", "characters": 6, "segments": 1}
    assert cli("mailing", "update", "1", "--text", TWO_SEGMENTS).exit_code == 0
    (listed,) = json.loads(cli("mailing", "list", "--json").stdout)["items"]
    assert listed["segments"] == SEGMENTS_OF_TWO


def test_dry_run_json_is_audience_segments_and_no_cost_without_a_price(cli):
    add_clients(cli, 3)
    dry = cli("mailing", "create", "--text", TWO_SEGMENTS, *TIMES, "--dry-run", "--json")
    assert dry.exit_code == 0
    assert json.loads(dry.stdout) == {"audience": 3, "segments": SEGMENTS_OF_TWO, "cost": None}
    assert "cost" not in dry.stderr
    assert json.loads(cli("mailing", "list", "--json").stdout)["total"] == 0


def test_dry_run_with_a_price_estimates_the_cost(cli, price):
    add_clients(cli, 3)
    dry = cli("mailing", "create", "--text", TWO_SEGMENTS, *TIMES, "--dry-run", "--json")
    assert json.loads(dry.stdout)["cost"] == {"price_per_segment": "0.05", "estimated": "0.30"}
    plain = cli("mailing", "create", "--text", TWO_SEGMENTS, *TIMES, "--dry-run")
    assert plain.stdout == "3\n"
    assert "text: 2 SMS segments (GSM-7, 162 characters)" in plain.stderr
    assert "estimated cost: 3 client(s) x 2 segment(s) x 0.05 = 0.30" in plain.stderr


def test_stats_shows_estimated_and_spent_cost_with_a_price(cli, price):
    add_clients(cli, 2)
    cli("mailing", "create", "--text", TWO_SEGMENTS, "--start", "now+1h", "--end", "now+2h")
    detail = json.loads(cli("stats", "1", "--json").stdout)
    assert detail["cost"] == {
        "price_per_segment": "0.05",
        "estimated": "0.20",
        "segments": 2,
        "audience": 2,
        "spent": "0.00",
    }
    table = cli("stats", "1").stdout
    assert "Cost" in table
    assert "0.20" in table


def test_stats_has_no_cost_without_a_price(cli):
    cli("mailing", "create", "--text", "x", *TIMES)
    assert json.loads(cli("stats", "1", "--json").stdout)["cost"] is None
    assert "Cost" not in cli("stats", "1").stdout


def test_a_bad_segment_price_is_refused_naming_the_variable(cli, monkeypatch):
    monkeypatch.setenv("NOTIFY_SEGMENT_PRICE", "-1")
    get_settings.cache_clear()
    refused = cli("mailing", "create", "--text", "x", *TIMES, "--dry-run")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: invalid setting: NOTIFY_SEGMENT_PRICE: not a price")
