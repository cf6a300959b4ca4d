"""The project's own promises: dependency lists in step, architecture boundaries, set-up commands."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

#: pip names whose conda-forge package is called differently.
CONDA_NAMES = {"psycopg[binary]": "psycopg"}


def _normalise(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)", requirement)
    assert match, requirement
    name, spec = match.groups()
    name = CONDA_NAMES.get(name.lower(), name).lower().replace("_", "-")
    return name, spec.replace(" ", "")


def pyproject_requirements() -> set[tuple[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_normalise(r) for r in requirements}


def conda_requirements(packages: list[object]) -> set[tuple[str, str]]:
    found = {_normalise(p) for p in packages if isinstance(p, str)}
    return {(name, spec) for name, spec in found if name not in {"python", "pip"}}


def test_environment_yml_matches_pyproject() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert conda_requirements(env["dependencies"]) == pyproject_requirements()
    assert "python>=3.11" in env["dependencies"]


def test_anaconda_project_matches_pyproject_and_has_the_commands() -> None:
    project = yaml.safe_load((ROOT / "anaconda-project.yml").read_text())
    assert conda_requirements(project["packages"]) == pyproject_requirements()
    assert project["dependencies"] == project["packages"]
    assert {"dashboard", "notebook", "pipeline", "test"} <= set(project["commands"])
    dashboard = project["commands"]["dashboard"]
    assert "panel serve app/main.py" in dashboard["unix"] and dashboard["supports_http_options"]


def imported_modules(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {
                    (str(path.relative_to(ROOT)), alias.name.split(".")[0]) for alias in node.names
                }
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("app", {"pipeline"}),
        ("pipeline", {"app"}),
        ("dqm", {"app", "pipeline"}),
        ("migrations", {"app", "pipeline"}),
    ],
)
def test_architecture_boundaries(package: str, forbidden: set[str]) -> None:
    offending = sorted(
        f"{path} imports {module}"
        for path, module in imported_modules(package)
        if module in forbidden
    )
    assert not offending, offending


def test_readme_shows_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line.strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    assert "DQM_REQUIRE_SERVICES=1" in ci
    assert re.search(r"^\s*make test\b", ci, re.MULTILINE)
