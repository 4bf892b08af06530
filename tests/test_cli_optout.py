"""``notifyctl client opt-out / opt-in`` and ``opted_out`` in the client JSON, on both backends."""

import json

import pytest


def listed(cli) -> dict[int, str | None]:
    """client id -> opted_out_at, from ``client list --json``."""
    page = json.loads(cli("client", "list", "--json").stdout)
    return {item["id"]: item["opted_out_at"] for item in page["items"]}


def test_opt_out_and_in_show_in_the_json_and_the_table(cli):
    cli("client", "create", "--phone", "79161234567")
    cli("client", "create", "--phone", "79031234567")

    out = cli("client", "opt-out", "1")
    assert (out.exit_code, out.stdout) == (0, "")
    assert out.stderr == "client 1 opted out; 0 pending message(s) cancelled\n"
    first = listed(cli)
    assert first[2] is None
    assert first[1].endswith("Z") or first[1].endswith("+00:00")  # UTC
    assert "opted out" in cli("client", "list").stdout

    again = cli("client", "opt-out", "1", "--json")  # idempotent: the first time stays
    assert again.exit_code == 0
    assert json.loads(again.stdout)["opted_out_at"] == first[1]

    opted_in = cli("client", "opt-in", "1", "--json")
    assert opted_in.exit_code == 0
    assert json.loads(opted_in.stdout) | {"created_at": 0, "updated_at": 0} == {
        "id": 1,
        "phone": "79161234567",
        "operator_code": "916",
        "tag": "",
        "timezone": "UTC",
        "created_at": 0,
        "updated_at": 0,
        "opted_out_at": None,
    }
    assert listed(cli) == {1: None, 2: None}


def test_opting_out_cancels_pending_messages_and_says_how_many(cli, session):
    from notifyctl.services import delivery
    from notifyctl.timeutil import utcnow
    from tests.factories import add_clients, add_mailing

    add_clients(session, 1)
    delivery.activate(session=session, mailing=add_mailing(session), now=utcnow())
    session.commit()
    out = cli("client", "opt-out", "1")
    assert out.stderr == "client 1 opted out; 1 pending message(s) cancelled\n"
    stats = json.loads(cli("stats", "1", "--json").stdout)
    assert [(m["status"], m["last_error"]) for m in stats["messages"]] == [
        ("cancelled", "opted out")
    ]


@pytest.mark.parametrize("verb", ["opt-out", "opt-in"])
@pytest.mark.parametrize(
    ("client_id", "code"),
    [("77", 3), (str(2**70), 3), ("-1", 2), ("abc", 2), ("1; DROP TABLE client", 2)],
)
def test_a_bad_id_is_one_line_on_stderr_and_changes_nothing(cli, verb, client_id, code):
    cli("client", "create", "--phone", "79161234567")
    result = cli("client", verb, client_id)
    assert (result.exit_code, result.stdout) == (code, "")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert listed(cli) == {1: None}


def test_import_reads_the_opted_out_column_and_names_a_bad_value_by_line(cli, tmp_path):
    cli("client", "create", "--phone", "79161234567")
    path = tmp_path / "optouts.csv"
    path.write_text("phone,opted_out\n79161234567,true\n79031234567,perhaps\n")

    refused = cli("client", "import", str(path), "--on-duplicate", "update")
    assert refused.exit_code == 2
    assert f"{path}:3: opted_out: 'perhaps' is not true or false" in refused.stderr
    assert listed(cli) == {1: None}

    path.write_text("phone,opted_out\n79161234567,true\n79031234567,FALSE\n")
    done = cli("client", "import", str(path), "--on-duplicate", "update")
    assert done.exit_code == 0, done.stderr
    page = json.loads(cli("client", "list", "--json").stdout)
    after = {item["phone"]: item["opted_out_at"] is not None for item in page["items"]}
    assert after == {"79161234567": True, "79031234567": False}
