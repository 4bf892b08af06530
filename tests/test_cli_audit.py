"""The audit log from the command line: every command's change names the OS user, and
``notifyctl audit`` shows the log; on both backends."""

import json

import pytest


@pytest.fixture(autouse=True)
def os_user(monkeypatch):
    """The operating system user as getpass finds it (LOGNAME first)."""
    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.setenv("USER", "ana")


def log(cli, *options: str) -> dict:
    result = cli("audit", "--json", *options)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_every_change_of_the_cli_is_recorded_as_its_os_user(cli, tmp_path):
    csv = tmp_path / "clients.csv"
    csv.write_text("phone,tag\n79031234567,a\n79261234567,b\n")
    commands = [
        ("client", "create", "--phone", "79161234567"),
        ("client", "update", "1", "--tag", "vip"),
        ("client", "import", str(csv)),
        ("client", "delete", "1", "--yes"),
        ("mailing", "create", "--text", "Sale", "--start", "now+1h", "--end", "now+2h"),
        ("mailing", "update", "1", "--text", "Sale -30%"),
        ("mailing", "pause", "1"),
        ("mailing", "resume", "1"),
        ("mailing", "retry", "1"),
        ("mailing", "cancel", "1", "--yes"),
        ("mailing", "delete", "1", "--yes"),
        ("token", "create", "deploy"),
        ("token", "revoke", "deploy"),
    ]
    for command in commands:
        assert cli(*command).exit_code == 0, command
    items = log(cli)["items"]
    assert {item["actor"] for item in items} == {"cli:ana"}
    assert [(i["action"], i["object_type"], i["object_id"]) for i in reversed(items)] == [
        ("created", "client", 1),
        ("updated", "client", 1),
        ("imported", "client", None),
        ("deleted", "client", 1),
        ("created", "mailing", 1),
        ("updated", "mailing", 1),
        ("paused", "mailing", 1),
        ("resumed", "mailing", 1),
        ("retried", "mailing", 1),
        ("cancelled", "mailing", 1),
        ("deleted", "mailing", 1),
        ("created", "api_token", 1),
        ("revoked", "api_token", 1),
    ]
    assert items[-3]["changes"]["imported"] == [None, 2]  # one entry for the file


def test_a_refused_command_records_nothing(cli):
    cli("client", "create", "--phone", "79161234567")
    assert cli("client", "create", "--phone", "+7 916 123-45-67").exit_code == 4
    assert cli("client", "update", "1", "--tz", "Mars/Base").exit_code == 2
    assert cli("mailing", "pause", "9").exit_code == 3
    assert log(cli)["total"] == 1


def test_audit_filters_by_mailing_or_client_and_pages(cli):
    cli("client", "create", "--phone", "79161234567")
    cli("client", "create", "--phone", "79031234567")
    cli("mailing", "create", "--text", "Sale", "--start", "now+1h", "--end", "now+2h")
    cli("client", "update", "2", "--tag", "vip")
    of_client = log(cli, "--client", "2")
    assert [(i["action"], i["object_id"]) for i in of_client["items"]] == [
        ("updated", 2),
        ("created", 2),
    ]
    assert of_client["items"][0]["changes"] == {"tag": ["", "vip"]}
    of_mailing = log(cli, "--mailing", "1")
    assert [(i["object_type"], i["action"]) for i in of_mailing["items"]] == [
        ("mailing", "created")
    ]
    page = log(cli, "--limit", "2", "--offset", "1")
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    assert page["items"][0]["object_type"] == "mailing"


def test_audit_prints_a_table_newest_first(cli):
    cli("client", "create", "--phone", "79161234567", "--tag", "vip")
    cli("client", "update", "1", "--tag", "gold")
    table = cli("audit")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    updated = next(n for n, line in enumerate(lines) if "updated" in line)
    created = next(n for n, line in enumerate(lines) if "created" in line)
    assert updated < created
    assert 'tag: "vip" → "gold"' in table.stdout
    assert "cli:ana" in lines[updated]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--limit", "0"), "--limit"),
        (("--offset", "-1"), "--offset"),
        (("--mailing", "0"), "--mailing"),
    ],
)
def test_bad_audit_options_are_one_line_naming_the_option(cli, options, named):
    result = cli("audit", *options)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {named}:")
    assert result.stderr.count("\n") == 1


def test_a_bad_retention_is_refused_naming_the_variable(cli, monkeypatch):
    monkeypatch.setenv("NOTIFY_AUDIT_RETENTION", "a year")
    result = cli("audit")
    assert result.exit_code == 2
    assert "NOTIFY_AUDIT_RETENTION" in result.stderr
    assert "365d" in result.stderr
