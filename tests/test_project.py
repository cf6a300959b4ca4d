"""The project's own promises: dependency lists in step, architecture boundaries, set-up commands."""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
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


#: The top-level packages that each package must not import. The core imports none of the others;
#: the job server and the dashboard do not import each other; the DAQ simulator stands beside them,
#: importing only the core, and none of them imports it (its command comes through an entry point).
FORBIDDEN_IMPORTS = {
    "dqm": {"app", "daqsim", "pipeline"},
    "migrations": {"app", "daqsim", "pipeline"},
    "pipeline": {"app", "daqsim"},
    "app": {"daqsim", "pipeline"},
    "daqsim": {"app", "pipeline"},
}


@dataclass(frozen=True)
class Import:
    """One import statement (or call) found in a module."""

    path: str  # the importing module, relative to the scanned root
    line: int
    module: str  # the imported module, dotted
    statement: str  # as written, for the failure message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.statement}"


def _dynamic_import(node: ast.Call) -> str | None:
    """The module of ``importlib.import_module("x")`` or ``__import__("x")``, if a constant."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(package: str, root: Path = ROOT) -> list[Import]:
    """Every absolute import in the modules of ``package``: at the top, inside functions and
    conditions alike, and the dynamic ones of a constant name. Relative imports stay inside the
    package and are left out."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.Import):
                found += [
                    Import(where, node.lineno, alias.name, ast.unparse(node))
                    for alias in node.names
                ]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append(Import(where, node.lineno, node.module, ast.unparse(node)))
            elif isinstance(node, ast.Call) and (module := _dynamic_import(node)):
                found.append(Import(where, node.lineno, module, ast.unparse(node)))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_architecture_boundaries(package: str) -> None:
    forbidden = FORBIDDEN_IMPORTS[package]
    offending = [str(i) for i in imports_of(package) if i.module.split(".")[0] in forbidden]
    rule = f"{package} must not import {', '.join(sorted(forbidden))}:"
    assert not offending, "\n".join([rule, *offending])


def test_every_package_has_its_boundaries() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    top_level = {name.split(".")[0] for name in setuptools["packages"]}
    assert top_level <= set(FORBIDDEN_IMPORTS), top_level - set(FORBIDDEN_IMPORTS)


def test_the_import_scan_sees_imports_anywhere_in_a_module(tmp_path: Path) -> None:
    (tmp_path / "core" / "sub").mkdir(parents=True)
    (tmp_path / "core" / "sub" / "mod.py").write_text(
        "import os, numpy as np\n"
        "from . import sibling\n"
        "def f():\n"
        "    from pipeline.server import JobServer\n"
        "if True:\n"
        "    import app.main\n"
        "class C:\n"
        "    def g(self):\n"
        "        return __import__('daqsim.run')\n"
        "importlib.import_module('daqsim.cli')\n"
    )
    found = imports_of("core", root=tmp_path)
    assert {i.module for i in found} == {
        "os",
        "numpy",
        "pipeline.server",
        "app.main",
        "daqsim.run",
        "daqsim.cli",
    }
    assert "core/sub/mod.py:4: from pipeline.server import JobServer" in map(str, found)


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


def test_ci_lints_before_it_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    lint = re.search(r"^\s*make lint\b", ci, re.MULTILINE)
    test = re.search(r"^\s*make test\b", ci, re.MULTILINE)
    assert lint and test and lint.start() < test.start()
