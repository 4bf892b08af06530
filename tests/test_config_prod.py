"""Production mode (NOTIFY_ENV=prod) refuses weak settings at the start of every process.

Each refusal is exit 2 with one line on stderr naming the variable, and never its value.
The processes run for real (``python -m notifyctl``), as a supervisor would start them.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from notifyctl.config import DEMO_MOCK_SECRET, DEMO_SENDER_TOKEN, Settings, weak_settings
from tests.processes import notifyctl

ROOT = Path(__file__).resolve().parent.parent
STRONG = {
    "NOTIFY_ENV": "prod",
    "NOTIFY_SENDER_TOKEN": "a-real-sender-token-from-the-sending-api",
    "NOTIFY_SESSION_SECRET": "s" * 32,
}
LONG_LOGIN = "nfy_" + "l" * 28  # 32 characters

#: (variable, value) pairs production refuses, each alone among strong settings.
WEAK = [
    ("NOTIFY_SENDER_TOKEN", ""),
    ("NOTIFY_SENDER_TOKEN", "   "),
    ("NOTIFY_SENDER_TOKEN", DEMO_SENDER_TOKEN),
    ("NOTIFY_SENDER_TOKEN", "change-me"),
    ("NOTIFY_SESSION_SECRET", None),  # unset: a random key per process
    ("NOTIFY_SESSION_SECRET", ""),
    ("NOTIFY_SESSION_SECRET", "x"),
    ("NOTIFY_SESSION_SECRET", "s" * 31),
    ("NOTIFY_SESSION_SECRET", "é" * 15),  # 30 bytes: the bound is bytes, not characters
    ("NOTIFY_SESSION_SECRET", DEMO_MOCK_SECRET),
    ("NOTIFY_SESSION_SECRET", "CHANGE_ME-but-long-enough-to-pass-the-length"),
    ("NOTIFY_LOGIN_TOKEN", "a"),
    ("NOTIFY_LOGIN_TOKEN", LONG_LOGIN[:-1]),
    ("NOTIFY_LOGIN_TOKEN", "changeme-changeme-changeme-changeme"),
    ("NOTIFY_DATABASE_URL", "postgresql://notifyctl:change-me@db:5432/notifyctl"),
    ("NOTIFY_OIDC_CLIENT_SECRET", "change-me"),
    ("NOTIFY_SMTP_PASSWORD", DEMO_MOCK_SECRET),
    ("NOTIFY_REPORT_TO", '["change-me@example.com"]'),
    # Spaces around a value are no secret: a padded demo value is still the demo value.
    ("NOTIFY_SENDER_TOKEN", " " + DEMO_SENDER_TOKEN),
    ("NOTIFY_SESSION_SECRET", " " * 32),
    ("NOTIFY_LOGIN_TOKEN", " " * 31 + "a"),
]
WEAK_IDS = [f"{name}={value!r:.20}" for name, value in WEAK]


def environment(**changes: str | None) -> dict[str, str]:
    """The test's environment (NOTIFY_* scrubbed by conftest) with strong prod settings."""
    env = dict(os.environ) | STRONG
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def secret_looking(value: str | None) -> bool:
    """Whether a refusal quoting ``value`` would leak something (the placeholder leaks nothing)."""
    return bool(value) and len(value.strip()) > 3 and value != "change-me"


def assert_refused(result, variable: str, value: str | None = None) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    if secret_looking(value):
        assert value not in result.stderr, "the refusal must not print the secret"


# --- the rules, in-process -------------------------------------------------------------


def test_strong_settings_pass_in_production():
    settings = Settings(
        env="prod",
        sender_token="a-real-sender-token-from-the-sending-api",
        session_secret="s" * 32,
        login_token=LONG_LOGIN,
    )
    assert weak_settings(settings) == []


@pytest.mark.parametrize(("variable", "value"), WEAK, ids=WEAK_IDS)
def test_production_refuses_each_weak_value_naming_its_variable(monkeypatch, variable, value):
    for name, strong in STRONG.items():
        monkeypatch.setenv(name, strong)
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = caught.value.errors()[0]["msg"]
    assert message.startswith(f"NOTIFY_ENV=prod refuses {variable}: ")
    if secret_looking(value):
        assert value not in message


@pytest.mark.parametrize(("variable", "value"), WEAK, ids=WEAK_IDS)
def test_development_accepts_the_same_values(monkeypatch, variable, value):
    if value is not None:
        monkeypatch.setenv(variable, value)
    Settings()  # no error: dev is for trying things out


def test_every_weak_variable_is_named_in_one_line(monkeypatch):
    monkeypatch.setenv("NOTIFY_ENV", "prod")
    monkeypatch.setenv("NOTIFY_LOGIN_TOKEN", "a")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = caught.value.errors()[0]["msg"]
    assert "\n" not in message
    assert message.startswith("NOTIFY_ENV=prod refuses NOTIFY_SENDER_TOKEN: it is the mock's")
    assert message.endswith("also refused: NOTIFY_SESSION_SECRET, NOTIFY_LOGIN_TOKEN")


def test_production_refuses_a_provider_without_a_public_url():
    strong = {
        "env": "prod",
        "sender_token": "a-real-sender-token-from-the-sending-api",
        "session_secret": "s" * 32,
        "oidc_issuer": "https://id.example.com",
        "oidc_client_id": "notifyctl",
    }
    with pytest.raises(ValidationError) as caught:
        Settings(**strong)
    assert caught.value.errors()[0]["msg"].startswith("NOTIFY_ENV=prod refuses NOTIFY_PUBLIC_URL")
    assert weak_settings(Settings(**strong, public_url="https://notify.example.com")) == []


def test_the_placeholder_is_a_word_not_any_text_containing_it(monkeypatch):
    for name, strong in STRONG.items():
        monkeypatch.setenv(name, strong)
    monkeypatch.setenv("NOTIFY_DATABASE_URL", "postgresql://u:p@exchange-metrics:5432/db")
    Settings()


def test_an_empty_login_token_means_unset_a_random_one_per_start(monkeypatch):
    for name, strong in STRONG.items():
        monkeypatch.setenv(name, strong)
    monkeypatch.setenv("NOTIFY_LOGIN_TOKEN", "")  # what compose passes when .env leaves it out
    Settings()


def test_the_demo_secret_is_the_mocks():
    from mock.auth import DEMO_SECRET

    assert DEMO_MOCK_SECRET == DEMO_SECRET


# --- every process refuses at its start --------------------------------------------------


@pytest.mark.parametrize(("variable", "value"), WEAK, ids=WEAK_IDS)
def test_daemon_check_refuses_each_weak_value(tmp_path, variable, value):
    result = notifyctl(
        "--db",
        f"sqlite:///{tmp_path / 'a.db'}",
        "daemon",
        "--check",
        env=environment(**{variable: value}),
    )
    assert_refused(result, variable, value)


def test_daemon_check_accepts_strong_values(tmp_path):
    env = environment(NOTIFY_LOGIN_TOKEN=LONG_LOGIN)
    result = notifyctl("--db", f"sqlite:///{tmp_path / 'a.db'}", "daemon", "--check", env=env)
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["daemon", "--burst"],
        ["api", "--port", "1"],  # refused before it would try to listen
        ["up", "--api-port", "1", "--mock-port", "1"],
        ["db", "upgrade"],
        ["client", "list"],
        ["token", "create", "ci"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_every_process_that_reads_settings_refuses_them(tmp_path, command):
    env = environment(NOTIFY_SESSION_SECRET="x")
    result = notifyctl("--db", f"sqlite:///{tmp_path / 'a.db'}", *command, env=env)
    assert_refused(result, "NOTIFY_SESSION_SECRET")
    assert not (tmp_path / "a.db").exists(), "refused before touching the database"


def test_env_example_copied_as_it_is_is_refused(tmp_path):
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")  # read from the working directory
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    result = notifyctl("daemon", "--check", env=env | {"NOTIFY_ENV": "prod"}, cwd=tmp_path)
    assert_refused(result, "NOTIFY_SENDER_TOKEN")
    assert "NOTIFY_SESSION_SECRET" in result.stderr


# --- the mock --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"MOCK_SECRET": "change-me"}, True),  # a placeholder, even outside production
        ({"MOCK_SECRET": "Change_Me-a-long-random-string-here"}, True),
        ({"NOTIFY_ENV": "prod"}, True),  # unset: the public demo token would open it
        ({"NOTIFY_ENV": "prod", "MOCK_SECRET": DEMO_MOCK_SECRET}, True),
        ({"NOTIFY_ENV": "prod", "MOCK_SECRET": "m" * 31}, True),
        ({"NOTIFY_ENV": "prod", "MOCK_SECRET": "m" * 32}, False),
        ({}, False),  # the demo secret, for local runs
        ({"MOCK_SECRET": "short"}, False),
    ],
    ids=[
        "placeholder",
        "placeholder-spelling",
        "prod-unset",
        "prod-demo",
        "prod-short",
        "prod-strong",
        "dev-demo",
        "dev-short",
    ],
)
def test_the_mock_refuses_a_weak_secret(env, refused):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "MOCK_"))}
    result = notifyctl("mock", "--print-token", env=base | env)
    if refused:
        assert_refused(result, "MOCK_SECRET", env.get("MOCK_SECRET"))
        assert result.stdout == "", "no token is printed"
    else:
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", result.stdout)


# --- no process prints a token it did not make up ------------------------------------------


@pytest.mark.parametrize(
    ("env", "generated", "shown"),
    [
        ("dev", True, True),  # a local run: the made-up token is the way in
        ("dev", False, False),  # NOTIFY_LOGIN_TOKEN: the operator has it already
        ("prod", True, False),  # stderr is a log there
        ("prod", False, False),
    ],
)
def test_the_login_lines_show_only_a_token_made_up_for_a_local_run(env, generated, shown):
    from notifyctl.render import login_lines

    settings = Settings(
        env=env, sender_token="a-real-sender-token", session_secret="s" * 32, login_token=None
    )
    token = "nfy_" + "t" * 43
    lines = login_lines(settings, "http://127.0.0.1:8000", token=token, generated=generated)
    assert (token in lines) is shown
    assert "http://127.0.0.1:8000/admin/" in lines
    assert "<" not in lines, "no placeholder such as ?token=<your NOTIFY_LOGIN_TOKEN>"
    if not generated:
        assert "http://127.0.0.1:8000/admin/login?token= followed by" in lines
        assert "use your NOTIFY_LOGIN_TOKEN" in lines


def test_a_weak_password_given_with_db_is_refused_too(tmp_path):
    url = "postgresql://notifyctl:change-me@127.0.0.1:1/notifyctl"
    result = notifyctl("--db", url, "client", "list", env=environment())
    assert_refused(result, "NOTIFY_DATABASE_URL")


def test_the_mock_reads_production_mode_from_the_env_file_too(tmp_path):
    (tmp_path / ".env").write_text("NOTIFY_ENV=prod\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "MOCK_"))}
    weak = {"MOCK_SECRET": "tiny-secret"}
    result = notifyctl("mock", "--print-token", env=base | weak, cwd=tmp_path)
    assert_refused(result, "MOCK_SECRET", "tiny-secret")
