"""``notifyctl mailing …`` and ``notifyctl stats`` end to end, in-process."""

import json

import pytest

# Times relative to now (now, now+1h, now-1m), and the states they give.
pytestmark = pytest.mark.clock


def create(cli, *extra):
    result = cli("mailing", "create", "--text", "Sale", "--start", "now", "--end", "now+1h", *extra)
    assert result.exit_code == 0, result.stderr
    return int(result.stdout)


def test_create_and_list_json_match_the_rest_shape(cli):
    mailing_id = create(cli, "--operator", "916", "--tag", "vip", "--window", "22:00-06:00")
    data = json.loads(cli("mailing", "list", "--json").stdout)
    item = data["items"][0]
    assert item["id"] == mailing_id
    assert item["filter"] == {"operator_codes": ["916"], "tags": ["vip"]}
    assert item["send_window"] == {"start": "22:00", "end": "06:00"}
    assert item["state"] == "running"
    assert item["start_at"].endswith("Z")


def test_start_in_the_future_is_scheduled(cli):
    result = cli(
        "mailing",
        "create",
        "--text",
        "x",
        "--start",
        "2099-01-01T09:00+03:00",
        "--end",
        "2099-01-01T21:00+03:00",
    )
    item = json.loads(cli("mailing", "list", "--json").stdout)["items"][0]
    assert (result.exit_code, item["state"], item["start_at"]) == (
        0,
        "scheduled",
        "2099-01-01T06:00:00Z",
    )


def test_update_replaces_filter_lists_and_can_remove_the_window(cli):
    mailing_id = create(cli, "--tag", "a", "--window", "09:00-18:00")
    assert (
        cli(
            "mailing", "update", str(mailing_id), "--tag", "b", "--tag", "c", "--no-window"
        ).exit_code
        == 0
    )
    item = json.loads(cli("mailing", "list", "--json").stdout)["items"][0]
    assert (item["filter"]["tags"], item["send_window"]) == (["b", "c"], None)
    assert cli("mailing", "update", str(mailing_id), "--tag", "").exit_code == 0
    item = json.loads(cli("mailing", "list", "--json").stdout)["items"][0]
    assert item["filter"]["tags"] == []


def test_pause_resume_cancel_and_the_conflicts_they_meet(cli):
    mailing_id = str(create(cli))
    assert cli("mailing", "pause", mailing_id).exit_code == 0
    assert cli("mailing", "pause", mailing_id).exit_code == 4
    assert cli("mailing", "resume", mailing_id).exit_code == 0
    assert cli("mailing", "cancel", mailing_id, "--yes").exit_code == 0
    again = cli("mailing", "update", mailing_id, "--text", "late")
    assert (again.exit_code, "cancelled" in again.stderr) == (4, True)
    assert cli("mailing", "retry", mailing_id).exit_code == 4


def test_delete_removes_it(cli):
    mailing_id = str(create(cli))
    assert cli("mailing", "delete", mailing_id, "--yes").exit_code == 0
    assert cli("mailing", "delete", mailing_id, "--yes").exit_code == 3


def test_bad_times_and_windows_are_one_line_errors_naming_the_option(cli):
    cases = [
        (["--start", "now", "--end", "now-1m"], "--end"),
        (["--start", "yesterday", "--end", "now+1h"], "--start"),
        (["--start", "now", "--end", "now+1h", "--window", "9-5"], "--window"),
        (["--start", "now", "--end", "now+1h", "--operator", "12"], "--operator"),
    ]
    for args, field in cases:
        result = cli("mailing", "create", "--text", "x", *args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith(f"error: {field}:"), result.stderr
        assert result.stderr.count("\n") == 1
    assert json.loads(cli("mailing", "list", "--json").stdout)["total"] == 0


def test_stats_json_shapes(cli):
    cli("client", "create", "--phone", "79161234567")
    mailing_id = create(cli)
    overall = json.loads(cli("stats", "--json").stdout)
    assert overall == [
        {
            "mailing_id": mailing_id,
            "state": "running",
            "total": 0,
            "by_status": {
                "pending": 0,
                "sending": 0,
                "sent": 0,
                "failed": 0,
                "expired": 0,
                "cancelled": 0,
            },
            "pruned_at": None,
        }
    ]
    one = json.loads(cli("stats", str(mailing_id), "--json").stdout)
    assert set(one) >= {"mailing_id", "state", "total", "by_status", "messages"}
    table = cli("stats")
    assert "Mailings by message status" in table.stdout


def test_stats_rejects_an_unknown_status_filter(cli):
    mailing_id = create(cli)
    result = cli("stats", str(mailing_id), "--status", "lost")
    assert (result.exit_code, result.stderr.startswith("error: --status:")) == (2, True)


def test_filter_lists_over_100_values_or_64_characters_exit_2_naming_the_list(cli):
    many = [arg for n in range(101) for arg in ("--tag", f"t{n}")]
    result = cli("mailing", "create", "--text", "x", "--start", "now", "--end", "now+1h", *many)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --tag: has 101 values; at most 100")
    mailing_id = create(cli, "--operator", "916")
    result = cli("mailing", "update", str(mailing_id), "--operator", "9" * 65)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --operator: has a value 65 characters long")
    (item,) = json.loads(cli("mailing", "list", "--json").stdout)["items"]
    assert item["filter"]["operator_codes"] == ["916"]


def test_create_warns_on_stderr_when_no_client_matches_the_filter(cli):
    cli("client", "create", "--phone", "79161234567", "--tag", "vip")
    times = ("--start", "now", "--end", "now+1h")
    result = cli("mailing", "create", "--text", "x", *times, "--tag", "nosuchtag")
    assert result.exit_code == 0
    assert result.stdout == "1\n"
    assert result.stderr.startswith("warning: no client matches the filter of mailing 1 now")
    assert "nosuchtag" in result.stderr
    matching = cli("mailing", "create", "--text", "x", *times, "--tag", "vip")
    assert (matching.stdout, matching.stderr) == (
        "2\n",
        "mailing 2: 1 SMS segment (GSM-7, 1 character)\n",  # (no warning: a client matches)
    )


def test_dry_run_prints_the_audience_and_creates_nothing(cli):
    for phone, tag in (("79161234567", "vip"), ("79031234567", "vip"), ("79261234567", "")):
        cli("client", "create", "--phone", phone, "--tag", tag)
    times = ("--start", "now", "--end", "now+1h")
    plain = cli("mailing", "create", "--text", "x", *times, "--tag", "vip", "--dry-run")
    assert (plain.exit_code, plain.stdout) == (0, "2\n")
    as_json = cli("mailing", "create", "--text", "x", *times, "--dry-run", "--json")
    assert json.loads(as_json.stdout)["audience"] == 3
    past = ("--start", "now", "--end", "now-1h")
    refused = cli("mailing", "create", "--text", "x", *past, "--dry-run")
    assert (refused.exit_code, refused.stderr.startswith("error: --end:")) == (2, True)
    assert json.loads(cli("mailing", "list", "--json").stdout)["total"] == 0


def test_create_json_prints_the_new_mailing_as_the_rest_api_does(cli):
    times = ("--start", "now", "--end", "now+1h")
    mailing = json.loads(cli("mailing", "create", "--text", "x", *times, "--json").stdout)
    listed = json.loads(cli("mailing", "list", "--json").stdout)["items"]
    assert listed == [mailing]
