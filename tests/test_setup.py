"""`make run` installs what running needs and nothing more; `make test` adds the test tools.

A first run used to install the development extras too (Playwright, schemathesis,
hypothesis ...): most of the download and of the set-up time.
"""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OURS = ("notifyctl", "daemon", "mock", "web")


def planned(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` would run in a fresh checkout (no .venv yet)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    # Run by `make test`, make's own variables would make this a sub-make that prints
    # "Entering/Leaving directory" lines: a plain make, as a user runs it.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    """What the `pip install` commands among ``commands`` install (-e/--upgrade dropped)."""
    found = []
    for command in commands:
        if "pip install " in command:
            arguments = command.split("pip install ", 1)[1].split("#")[0]
            found += [w for w in arguments.replace("'", "").split() if not w.startswith("-")]
    return found


def test_make_run_installs_the_project_without_any_extra(tmp_path):
    assert installs(planned("run", tmp_path)) == ["pip", "."]


def test_make_test_adds_the_test_extra_and_make_lint_the_lint_extra(tmp_path):
    assert installs(planned("test", tmp_path)) == ["pip", ".", ".[test]"]
    assert installs(planned("lint", tmp_path)) == ["pip", ".", ".[lint]"]
    extras = PROJECT["optional-dependencies"]
    tools = {Requirement(r).name for r in extras["test"]}
    assert {"pytest", "playwright", "schemathesis", "hypothesis"} <= tools
    assert {Requirement(r).name for r in extras["lint"]} == {"ruff", "import-linter"}


def runtime_distributions() -> set[str]:
    """The distributions `pip install .` brings: our dependencies, transitively."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in PROJECT["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen:
            continue
        seen.add(name)
        wanted = requirement.extras or {""}
        for text in importlib.metadata.requires(requirement.name) or []:
            nested = Requirement(text)
            if nested.marker is None or any(
                nested.marker.evaluate({"extra": extra}) for extra in wanted
            ):
                todo.append(nested)
    return seen


def imported_modules() -> set[str]:
    """The top-level modules our four packages import (at any depth in the code)."""
    found = set()
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def test_the_code_imports_nothing_the_run_set_up_leaves_out():
    providers = importlib.metadata.packages_distributions()
    runtime = runtime_distributions()
    missing = {}
    for module in sorted(imported_modules() - set(OURS) - set(sys.stdlib_module_names)):
        distributions = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
        if not distributions & runtime:
            missing[module] = distributions or "not installed"
    assert not missing, f"imported by the code, not installed by `make run`: {missing}"


@pytest.mark.parametrize("stamp", [".installed-run", ".installed-test", ".installed-lint"])
def test_each_set_up_has_its_own_stamp_that_a_changed_pyproject_renews(stamp, tmp_path):
    commands = planned(f".venv/{stamp}", tmp_path)
    assert commands[-1] == f"touch .venv/{stamp}"
