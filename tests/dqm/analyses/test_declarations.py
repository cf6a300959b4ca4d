"""Analysis declarations: read from TOML, entry points and the operator's file; every wrong one is
refused with one sentence that names the file, the entry and the fault."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from dqm.analyses.declarations import (
    Catalog,
    DeclarationError,
    check_versions,
    load_catalog,
    read_file,
)

MODULE = """
from dqm.analyses import Result, RunView, Value

def measure(run: RunView, *, scale: float = 1.0) -> Result:
    return Result(variables={"x": Value(scale)})

not_callable = 42
"""

GOOD = """
[analyses.good]
version = 2
description = "a good one"
function = "operator_analyses:measure"
run_types = ["physics", "laser"]
min_run = 10
max_run = 20
include_tags = ["calm"]
exclude_tags = ["messy"]
requires = ["pmt_stats", "event_table"]
when = "live"
timeout = 30
[analyses.good.parameters]
scale = 2.0
[analyses.good.variables]
x = { unit = "MeV", meaning = "a number", expected = [1, 3] }
y = { unit = "1", meaning = "sometimes", optional = true }
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "operator_analyses.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "builtin.toml").write_text("")
    return tmp_path


def catalog_of(files: Path, text: str, **kwargs: object) -> Catalog:
    path = files / "mine.toml"
    path.write_text(textwrap.dedent(text))
    return load_catalog(path, builtin=files / "builtin.toml", entry_points=(), **kwargs)  # type: ignore[arg-type]


def test_a_good_declaration_is_read_whole(files: Path) -> None:
    catalog = catalog_of(files, GOOD)
    good = catalog.get("good")
    assert good.version == 2 and good.when == "live" and good.live
    assert good.run_types == {"physics", "laser"} and good.requires == ("pmt_stats", "event_table")
    assert good.parameters == {"scale": 2.0} and good.timeout_s == 30
    assert good.variables["x"].expected == (1.0, 3.0) and good.variables["y"].optional
    assert good.origin == str(files / "mine.toml")
    assert good.applies_to(run_id=15, run_type="physics", tags=["calm"])
    assert not good.applies_to(run_id=15, run_type="physics", tags=["calm", "messy"])
    assert not good.applies_to(run_id=15, run_type="physics", tags=[])
    assert not good.applies_to(run_id=21, run_type="physics", tags=["calm"])
    assert not good.applies_to(run_id=15, run_type="random", tags=["calm"])
    assert catalog.for_run(run_id=12, run_type="laser", tags=["calm"], live=True) == [good]
    assert catalog.for_run(run_id=12, run_type="laser", tags=["calm"], live=False) == []
    assert good.load_function()(None, scale=3.0).variables["x"].value == 3.0
    assert good.to_json()["variables"]["x"] == {
        "unit": "MeV",
        "meaning": "a number",
        "expected": [1.0, 3.0],
        "optional": False,
    }


def test_the_shipped_declarations_load() -> None:
    catalog = load_catalog(None, entry_points=())
    for declaration in catalog:
        assert declaration.variables and declaration.load_function()


ENTRY = '[analyses.{name}]\nversion = 1\nfunction = "operator_analyses:measure"\n{extra}\n[analyses.{name}.variables]\nx = {{ unit = "1", meaning = "x" }}\n'


def entry(extra: str = "", name: str = "one") -> str:
    return ENTRY.format(name=name, extra=extra)


BAD = [
    ("[analyses.one\nversion = 1", "is not valid TOML"),
    (entry('colour = "red"'), "[analyses.one]: unknown field 'colour'"),
    (entry('requires = ["raw_files"]'), "[analyses.one]: unknown requirement 'raw_files'"),
    (
        entry().replace("operator_analyses:measure", "no_such_module:measure"),
        "[analyses.one]: function 'no_such_module:measure' cannot be imported (ModuleNotFoundError",
    ),
    (
        entry().replace("operator_analyses:measure", "operator_analyses:missing"),
        "function 'operator_analyses:missing' cannot be imported (AttributeError",
    ),
    (
        entry().replace("operator_analyses:measure", "operator_analyses:not_callable"),
        "function 'operator_analyses:not_callable' is not callable",
    ),
    (
        entry().replace("operator_analyses:measure", "operator_analyses.measure"),
        "function must be 'package.module:function'",
    ),
    (entry().replace("version = 1", 'version = "1.0"'), "version must be an integer of at least 1"),
    (entry().replace("version = 1", "version = 0"), "version must be an integer of at least 1"),
    (entry().replace("version = 1\n", ""), "[analyses.one]: version is missing"),
    (
        '[analyses.one]\nversion = 1\nfunction = "operator_analyses:measure"\n',
        "variables must be a table of at least one variable",
    ),
    (entry().replace('unit = "1", ', ""), "variable 'x' needs a unit"),
    (entry().replace(', meaning = "x"', ""), "variable 'x' needs a one-line meaning"),
    (
        entry().replace('meaning = "x"', 'meaning = "x", expected = [3, 1]'),
        "variable 'x': expected must be [low, high] with low <= high",
    ),
    (entry('run_types = ["cosmics"]'), "run type 'cosmics' is not one of physics"),
    (entry('when = "sometimes"'), "when must be 'completion' or 'live'"),
    (entry("timeout = -1"), "timeout must be a positive number of seconds"),
    (entry("min_run = 20\nmax_run = 10"), "min_run 20 is above max_run 10"),
    (entry('include_tags = ["Bad Tag"]'), "include_tags: 'Bad Tag' is not a tag"),
    (
        entry("[analyses.one.parameters]\ncolour = 1"),
        "does not take these parameters and the run view",
    ),
    (entry(name="Energy-Scale"), "an analysis name is lower-case letters"),
    ("title = 'x'\n" + entry(), "unknown top-level key 'title'"),
    (entry() + entry(name="one").replace("[analyses.one]", "[analyses.one]"), "is not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_a_wrong_declaration_is_refused_in_one_sentence(
    files: Path, text: str, message: str
) -> None:
    with pytest.raises(DeclarationError) as error:
        catalog_of(files, text)
    sentence = str(error.value)
    assert str(files / "mine.toml") in sentence
    assert message in sentence
    assert "\n" not in sentence


def test_a_missing_operator_file_is_refused(files: Path) -> None:
    with pytest.raises(DeclarationError, match=r"nowhere.toml: no such file"):
        load_catalog(files / "nowhere.toml", builtin=files / "builtin.toml", entry_points=())


def test_duplicate_names_across_files_are_refused(files: Path) -> None:
    (files / "builtin.toml").write_text(entry(name="dup"))
    with pytest.raises(DeclarationError) as error:
        catalog_of(files, entry(name="dup"))
    assert str(error.value).startswith(f"{files / 'mine.toml'}: [analyses.dup]: an analysis")
    assert f"already declared in {files / 'builtin.toml'}" in str(error.value)


def test_a_version_that_goes_backwards_is_refused(files: Path) -> None:
    catalog = catalog_of(files, GOOD)
    check_versions(catalog, {"good": 2, "other": 7})  # the same version, or other analyses: fine
    with pytest.raises(DeclarationError) as error:
        check_versions(catalog, {"good": 3})
    assert str(error.value) == (
        f"{files / 'mine.toml'}: [analyses.good]: version 2 is below version 3, which the "
        "database already has; versions only go up (declare version 3 or higher)."
    )


def test_analyses_from_entry_points(files: Path) -> None:
    (files / "package.toml").write_text(entry(name="from_file"))
    (files / "operator_analyses_points.py").write_text(
        "from pathlib import Path\n"
        f"FILE = Path({str(files / 'package.toml')!r})\n"
        "DECLARED = {'analyses': {'from_mapping': {'version': 1, 'function': "
        "'operator_analyses:measure', 'variables': {'x': {'unit': '1', 'meaning': 'x'}}}}}\n"
        "def declared():\n    return DECLARED\n"
        "WRONG = 42\n"
    )

    def point(name: str, value: str) -> importlib.metadata.EntryPoint:
        return importlib.metadata.EntryPoint(name, value, "dqm.analyses")

    catalog = load_catalog(
        None,
        builtin=files / "builtin.toml",
        entry_points=[
            point("a", "operator_analyses_points:FILE"),
            point("b", "operator_analyses_points:declared"),
        ],
    )
    assert set(catalog.analyses) == {"from_file", "from_mapping"}
    assert catalog.get("from_mapping").origin.startswith("entry point b")
    with pytest.raises(DeclarationError, match=r"entry point c .* gives a int; it must give"):
        load_catalog(
            None,
            builtin=files / "builtin.toml",
            entry_points=[point("c", "operator_analyses_points:WRONG")],
        )
    with pytest.raises(DeclarationError, match=r"entry point d .* cannot be loaded"):
        load_catalog(
            None, builtin=files / "builtin.toml", entry_points=[point("d", "nothing_here:X")]
        )


def test_reading_without_importing(files: Path) -> None:
    path = files / "lazy.toml"
    path.write_text(entry().replace("operator_analyses:measure", "elsewhere:measure"))
    (declaration,) = read_file(path, import_functions=False)
    assert declaration.function == "elsewhere:measure"
    with pytest.raises(DeclarationError, match="cannot be imported"):
        declaration.load_function()


def test_unknown_analysis_names_the_known_ones(files: Path) -> None:
    with pytest.raises(
        DeclarationError, match=r"no analysis 'nope' is declared; the analyses are: good"
    ):
        catalog_of(files, GOOD).get("nope")
