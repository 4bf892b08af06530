"""Wrong input on the command line is exit 2 and one line on stderr naming the field,
never a traceback (issue 14, item 3), on SQLite and PostgreSQL.

A byte that is not UTF-8 in an argument reaches Python as a lone surrogate ("\\udcff").
"""

import json
import os

import pytest


def one_line_error(result, field: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith(f"error: {field}:"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "moment"),
    [
        ("--start", "0001-01-01T00:00:00+05:00"),
        ("--end", "9999-12-31T23:59:59-05:00"),
        ("--end", "9999-12-31T23:59:59Z"),
        ("--start", "1969-07-20T20:17:00Z"),
        ("--end", "now+99999999999d"),
        ("--start", "now-99999999999d"),
    ],
)
def test_a_time_out_of_range_is_exit_2_naming_it(cli, option, moment):
    times = {"--start": "now", "--end": "now+1h"} | {option: moment}
    result = cli(
        "mailing", "create", "--text", "x", *(part for pair in times.items() for part in pair)
    )
    one_line_error(result, option)
    created = cli("mailing", "create", "--text", "x", "--start", "now", "--end", "now+1h")
    mailing_id = created.stdout.strip()
    one_line_error(cli("mailing", "update", mailing_id, option, moment), option)
    assert json.loads(cli("mailing", "list", "--json").stdout)["total"] == 1


@pytest.mark.parametrize("hostile", ["a\udcffb", "\ud800"])
def test_text_that_is_not_utf8_is_exit_2_naming_the_field(cli, hostile):
    times = ("--start", "now", "--end", "now+1h")
    one_line_error(cli("mailing", "create", "--text", hostile, *times), "--text")
    one_line_error(cli("mailing", "create", "--text", "x", "--tag", hostile, *times), "--tag")
    one_line_error(cli("client", "create", "--phone", "79161234567", "--tag", hostile), "--tag")
    one_line_error(cli("client", "list", "--tag", hostile), "--tag")
    one_line_error(cli("token", "revoke", hostile), "NAME")
    assert json.loads(cli("client", "list", "--json").stdout)["total"] == 0


def test_a_token_name_cannot_end_in_a_newline(cli):
    one_line_error(cli("token", "create", "script\n"), "NAME")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--error-rate", "nan"),
        ("--error-rate", "inf"),
        ("--error-rate", "-0.1"),
        ("--drop-rate", "1.5"),
        ("--latency-ms", "inf"),
        ("--latency-ms", "nan"),
        ("--jitter-ms", "1e300"),
        ("--rate-limit", "inf"),
        ("--outage-seconds", "inf"),
        ("--outage-at", "0001-01-01T00:00:00+05:00"),
    ],
)
def test_mock_faults_out_of_bounds_are_exit_2(option, value, monkeypatch):
    from typer.testing import CliRunner

    from mock import server
    from notifyctl.cli import app

    def serve(**kwargs):  # (accepted: the mock would serve forever)
        raise AssertionError(f"the mock started with {kwargs['faults']}")

    monkeypatch.setattr(server, "serve", serve)
    result = CliRunner().invoke(app, ["mock", option, value])
    one_line_error(result, option)


def test_a_setting_that_cannot_be_read_is_exit_2_in_one_line(tmp_path):
    from tests.processes import notifyctl

    env = dict(os.environ) | {"NOTIFY_REPORT_TO": "[bad"}
    result = notifyctl("--db", f"sqlite:///{tmp_path / 'a.db'}", "client", "list", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid setting:")
    assert "NOTIFY_REPORT_TO: is not valid JSON" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_log_file_that_is_a_folder_is_exit_2_in_one_line(cli, tmp_path):
    result = cli("logs", "--file", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {tmp_path}: is a directory\n"
