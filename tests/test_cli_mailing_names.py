"""``notifyctl mailing … --name N --transactional`` and the name first in every listing."""

import json

import pytest


def create(cli, *extra) -> str:
    result = cli("mailing", "create", "--text", "Sale", "--start", "now", "--end", "now+1h", *extra)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def shown(cli, mailing_id: str) -> dict:
    result = cli("mailing", "show", mailing_id, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def header(table: str, column: str) -> list[str]:
    """The column names of a rich table printed by the CLI (the line naming ``column``)."""
    line = next(line for line in table.splitlines() if "┃" in line and f" {column} " in line)
    return [cell.strip() for cell in line.split("┃") if cell.strip()]


def one_line_error(result, option: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith(f"error: {option}:"), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_create_with_a_name_and_the_flag_shows_both_in_json(cli):
    mailing_id = create(cli, "--name", " Codes ", "--transactional")
    item = shown(cli, mailing_id)
    assert (item["name"], item["transactional"]) == ("Codes", True)
    listed = json.loads(cli("mailing", "list", "--json").stdout)["items"][0]
    assert listed == item
    plain = shown(cli, create(cli))
    assert (plain["name"], plain["transactional"]) == (None, False)


def test_the_name_is_the_first_column_of_the_listings(cli):
    create(cli, "--name", "Black Friday")
    create(cli)
    table = cli("mailing", "list").stdout
    assert header(table, "id")[:3] == ["name", "id", "state"], table
    assert "Black Friday" in table
    stats = cli("stats").stdout
    assert header(stats, "mailing")[:3] == ["name", "mailing", "state"], stats
    assert "Black Friday" in stats


def test_show_says_whether_it_is_transactional(cli):
    mailing_id = create(cli, "--name", "Codes", "--transactional")
    result = cli("mailing", "show", mailing_id)
    assert result.exit_code == 0, result.stderr
    fields = dict(
        [cell.strip() for cell in line.split("│") if cell.strip()]
        for line in result.stdout.splitlines()
        if line.count("│") == 3
    )
    assert (fields["name"], fields["transactional"]) == ("Codes", "yes"), result.stdout
    assert cli("mailing", "show", "99").exit_code == 3


def test_a_name_that_looks_like_markup_is_shown_as_typed(cli):
    create(cli, "--name", "[bold]loud[/bold] [/x]")
    result = cli("mailing", "list")
    assert result.exit_code == 0, result.output
    assert "[bold]loud[/bold] [/x]" in result.stdout


def test_update_renames_and_an_empty_name_removes_it(cli):
    mailing_id = create(cli, "--name", "Draft")
    assert cli("mailing", "update", mailing_id, "--name", "Final").exit_code == 0
    assert shown(cli, mailing_id)["name"] == "Final"
    assert cli("mailing", "update", mailing_id, "--text", "Other").exit_code == 0
    assert shown(cli, mailing_id)["name"] == "Final"
    assert cli("mailing", "update", mailing_id, "--name", "").exit_code == 0
    assert shown(cli, mailing_id)["name"] is None


def test_the_flag_cannot_change_once_the_mailing_has_started(cli, session):
    from notifyctl.services import delivery, mailings
    from notifyctl.timeutil import utcnow

    scheduled = cli(
        "mailing", "create", "--text", "x", "--start", "now+1h", "--end", "now+2h"
    ).stdout.strip()
    assert cli("mailing", "update", scheduled, "--transactional").exit_code == 0
    assert shown(cli, scheduled)["transactional"] is True
    assert cli("mailing", "update", scheduled, "--not-transactional").exit_code == 0
    assert shown(cli, scheduled)["transactional"] is False

    started = create(cli, "--name", "Codes", "--transactional")
    delivery.activate(
        session=session,
        mailing=mailings.get_mailing(session=session, mailing_id=int(started)),
        now=utcnow(),
    )
    session.commit()
    refused = cli("mailing", "update", started, "--not-transactional", "--name", "Other")
    assert refused.exit_code == 4
    assert refused.stderr.startswith("error: --transactional: mailing "), refused.stderr
    assert "has started" in refused.stderr
    assert (shown(cli, started)["transactional"], shown(cli, started)["name"]) == (True, "Codes")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x" * 201, "201 characters"),
        ("a\x00b", "NUL"),
        ("a\udcffb", "no character"),  # a byte that is not UTF-8 in an argument
        ("two\nlines", "U+000A"),
        ("\x1b[2Jcleared", "U+001B"),
    ],
)
def test_a_hostile_name_is_one_line_naming_the_option_and_changes_nothing(cli, name, says):
    times = ("--start", "now", "--end", "now+1h")
    result = cli("mailing", "create", "--name", name, "--text", "x", *times)
    one_line_error(result, "--name")
    assert says in result.stderr
    mailing_id = create(cli, "--name", "Kept")
    one_line_error(cli("mailing", "update", mailing_id, "--name", name), "--name")
    assert json.loads(cli("mailing", "list", "--json").stdout)["total"] == 1
    assert shown(cli, mailing_id)["name"] == "Kept"
