"""The README documents every command, and every command explains itself with an example."""

from pathlib import Path

import pytest
import typer
from typer.main import get_command

from notifyctl.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def all_commands(command=None, prefix=()):
    command = command or get_command(app)
    for name, sub in getattr(command, "commands", {}).items():
        path = (*prefix, name)
        if getattr(sub, "commands", None):
            yield from all_commands(sub, path)
        else:
            yield path, sub


@pytest.mark.parametrize(
    ("path", "command"),
    list(all_commands()),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_every_command_is_in_the_readme_with_an_example_in_its_help(path, command):
    assert f"notifyctl {' '.join(path)}" in README
    assert "Example" in (command.help or ""), f"{' '.join(path)} --help has no example"


def test_every_setting_is_in_the_configuration_table():
    from notifyctl.config import Settings

    for name in Settings.model_fields:
        assert f"`NOTIFY_{name.upper()}`" in README, name


def test_readme_shows_the_two_commands():
    assert "make run" in README
    assert "make test" in README
    assert isinstance(app, typer.Typer)
