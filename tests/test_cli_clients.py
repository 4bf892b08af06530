"""``notifyctl client …`` end to end, in-process, on both backends."""

import json


def test_create_prints_the_new_id_and_list_shows_it(cli):
    created = cli("client", "create", "--phone", "+7 (916) 123-45-67", "--tag", "vip")
    assert (created.exit_code, created.stdout.strip()) == (0, "1")
    listed = cli("client", "list")
    assert "79161234567" in listed.stdout
    assert "vip" in listed.stdout


def test_list_json_is_a_page_of_clients(cli):
    cli("client", "create", "--phone", "79161234567", "--tz", "Europe/Moscow")
    cli("client", "create", "--phone", "79031234567", "--tag", "x")
    data = json.loads(cli("client", "list", "--operator", "903", "--json").stdout)
    assert data["total"] == 1
    assert data["items"][0] | {"created_at": None, "updated_at": None} == {
        "id": 2,
        "phone": "79031234567",
        "operator_code": "903",
        "tag": "x",
        "timezone": "UTC",
        "created_at": None,
        "updated_at": None,
        "opted_out_at": None,
    }


def test_update_and_delete(cli):
    cli("client", "create", "--phone", "79161234567")
    assert cli("client", "update", "1", "--tag", "gold", "--tz", "asia/tokyo").exit_code == 0
    item = json.loads(cli("client", "list", "--json").stdout)["items"][0]
    assert (item["tag"], item["timezone"]) == ("gold", "Asia/Tokyo")
    assert cli("client", "delete", "1", "--yes").exit_code == 0
    assert json.loads(cli("client", "list", "--json").stdout)["total"] == 0


def test_bad_phone_is_one_line_on_stderr_and_exit_2(cli):
    result = cli("client", "create", "--phone", "12345")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --phone:")


def test_duplicate_phone_exits_4_and_unknown_id_exits_3(cli):
    cli("client", "create", "--phone", "79161234567")
    duplicate = cli("client", "create", "--phone", "+79161234567")
    assert (duplicate.exit_code, duplicate.stderr.count("\n")) == (4, 1)
    missing = cli("client", "delete", "77", "--yes")
    assert missing.exit_code == 3
    assert "no client with id 77" in missing.stderr


def test_import_reports_bad_rows_by_line_and_imports_nothing(cli, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text(
        "phone,operator_code,tag,timezone\n79161234567,,a,\nbad,,b,\n79031234567,,c,Mars/X\n"
    )
    result = cli("client", "import", str(path))
    assert result.exit_code == 2
    assert f"{path}:3: phone:" in result.stderr
    assert f"{path}:4: timezone:" in result.stderr
    assert json.loads(cli("client", "list", "--json").stdout)["total"] == 0


def test_import_with_skip_invalid_keeps_the_good_rows(cli, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("phone\n79161234567\nbad\n")
    result = cli("client", "import", str(path), "--skip-invalid")
    assert result.exit_code == 0
    assert "imported 1 client(s), 1 bad row(s) skipped" in result.stderr


def test_import_of_a_missing_file_is_one_clear_error(cli, tmp_path):
    result = cli("client", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_the_same_file_imports_again_with_on_duplicate_skip_or_update(cli, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("phone,tag\n79161234567,a\n79031234567,b\n")
    assert cli("client", "import", str(path)).exit_code == 0
    again = cli("client", "import", str(path))
    assert again.exit_code == 2
    assert "--on-duplicate skip or update takes the 2 stored phone(s)" in again.stderr
    path.write_text("phone,tag\n79161234567,new\n79261234567,c\n")
    skipped = cli("client", "import", str(path), "--on-duplicate", "skip")
    assert skipped.stderr == "imported 1 client(s), 1 already stored, left as they were\n"
    updated = cli("client", "import", str(path), "--on-duplicate", "update")
    assert updated.stderr == "imported 0 client(s), updated 2\n"
    items = json.loads(cli("client", "list", "--json").stdout)["items"]
    assert [(c["phone"], c["tag"]) for c in items] == [
        ("79161234567", "new"),
        ("79031234567", "b"),
        ("79261234567", "c"),
    ]
    wrong = cli("client", "import", str(path), "--on-duplicate", "merge")
    assert wrong.stderr == "error: --on-duplicate: 'merge' is not one of fail, skip, update\n"


def test_the_import_progress_bar_counts_rows(cli, tmp_path, monkeypatch):
    """Shown as on a terminal: the bar's count is rows of the file, not bytes."""
    import io

    from rich.console import Console

    from notifyctl import render

    screen = io.StringIO()
    monkeypatch.setattr(
        render, "stderr_console", lambda: Console(file=screen, force_terminal=True, width=100)
    )
    path = tmp_path / "clients.csv"
    path.write_text("phone\n" + "".join(f"791600000{n:02d}\n" for n in range(25)))
    assert cli("client", "import", str(path)).exit_code == 0
    assert "25/25 rows" in screen.getvalue()
