"""Our four top-level names collide with PyPI packages; make sure nothing else provides them."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("notifyctl", "daemon", "mock", "web")


def test_no_other_distribution_provides_our_top_level_names():
    providers = importlib.metadata.packages_distributions()
    for name in OURS:
        assert set(providers.get(name, ["notifyctl"])) == {"notifyctl"}, (name, providers[name])


def test_the_distribution_ships_exactly_our_packages_and_is_never_uploaded():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == list(OURS)
    assert "Private :: Do Not Upload" in project["project"]["classifiers"]
    names = {
        re.split(r"[\s<>=!~\[;]", dep, maxsplit=1)[0].lower() for dep in all_dependencies(project)
    }
    assert names.isdisjoint({"mock", "python-daemon", "web.py"})


def all_dependencies(project: dict) -> list[str]:
    extras = project["project"].get("optional-dependencies", {}).values()
    return project["project"]["dependencies"] + [dep for group in extras for dep in group]


def test_mock_is_ours():
    import mock

    assert Path(mock.__file__).resolve().parent == ROOT / "mock"


def test_the_wheel_carries_the_admin_templates_and_assets(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("notifyctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "web/templates/admin/base.html",
        "web/static/admin.css",
        "web/static/vendor/htmx-2.0.11.min.js",
        "web/static/vendor/pico-2.1.1.min.css",
    ):
        assert shipped in names
