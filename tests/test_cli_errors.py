"""Whatever goes wrong, the CLI says it in one line on stderr and exits non-zero."""

from typer.testing import CliRunner

from notifyctl.cli import app
from tests.conftest import Cli

runner = CliRunner()


def one_line_error(result, code):
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_postgresql_is_one_line_exit_5():
    result = Cli("postgresql://nobody@127.0.0.1:1/none")("client", "list")
    one_line_error(result, 5)
    assert "127.0.0.1" in result.stderr


def test_password_in_the_url_is_never_printed():
    result = Cli("postgresql://user:hunter2@127.0.0.1:1/none")("stats")
    one_line_error(result, 5)
    assert "hunter2" not in result.stderr


def test_unsupported_or_garbled_url_is_refused():
    one_line_error(Cli("mysql://localhost/x")("stats"), 5)
    one_line_error(Cli("not a url")("stats"), 5)


def test_invalid_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("NOTIFY_DEFAULT_TIMEZONE", "Moon/Crater")
    result = runner.invoke(app, ["stats"])
    one_line_error(result, 2)
    assert "NOTIFY_DEFAULT_TIMEZONE" in result.stderr


def test_default_database_is_a_sqlite_file_in_the_user_data_directory(tmp_path):
    result = runner.invoke(app, ["client", "create", "--phone", "79161234567"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "data" / "notifyctl" / "notifyctl.db").is_file()


def test_db_upgrade_reports_what_it_did(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    first = runner.invoke(app, ["--db", url, "db", "upgrade"])
    second = runner.invoke(app, ["--db", url, "db", "upgrade"])
    assert "upgraded from empty" in first.stderr
    assert "up to date" in second.stderr


def test_usage_errors_exit_2_without_traceback():
    result = runner.invoke(app, ["client", "create"])
    assert result.exit_code == 2
    assert "--phone" in result.stderr
