"""Check declarations: the shipped defaults load, and every fault of a check file is refused with one
sentence naming the file, the entry and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqm.analyses.declarations import load_catalog
from dqm.checks.declarations import (
    HISTOGRAMS,
    KINDS,
    DeclarationError,
    check_versions,
    load_checks,
)
from dqm.messages import RUN_TYPES

GOOD = """
[checks.my_energy]
version = 2
kind = "histogram_mean_in_range"
run_types = ["physics"]
histogram = "rec/energy"
[checks.my_energy.parameters]
warning = [0.5, 3.0]
bad = [0.2, 5.0]
"""


@pytest.fixture(scope="module")
def analyses():
    return load_catalog(import_functions=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my_checks.toml"
    path.write_text(text)
    return path


def test_the_shipped_checks_load_and_each_applies_to_some_run_type(analyses) -> None:
    catalog = load_checks(analyses=analyses)
    assert len(catalog) >= 10
    kinds = {check.kind for check in catalog}
    assert kinds == set(KINDS)  # every kind has a default check
    for check in catalog:
        assert any(check.applies_to(t) for t in RUN_TYPES), check.name
        assert check.stage in ("calib", "rec", "pmt", "analyses", "processing")
        if check.histogram:
            assert check.histogram[1] in HISTOGRAMS[check.histogram[0]]
    assert ("energy_scale", "po210_peak_mev") in catalog.variables()
    assert catalog.history_runs() == 10
    assert {c.name for c in catalog.for_run("random")} == {"pmt_classes", "processing"}


def test_an_operator_file_adds_checks_with_defaults_filled_in(tmp_path: Path, analyses) -> None:
    catalog = load_checks(write(tmp_path, GOOD), analyses=analyses)
    check = catalog.get("my_energy")
    assert (check.version, check.stage, check.histogram) == (2, "rec", ("rec", "energy"))
    assert check.parameters["min_entries"] == 100.0  # the kind's default
    assert check.parameters["warning"] == (0.5, 3.0)
    assert check.to_json()["parameters"]["warning"] == [0.5, 3.0]
    with pytest.raises(DeclarationError, match="no check 'nope' is declared; the checks are"):
        catalog.get("nope")


BAD = [
    ("version = 1\nkind = 'histogram_shape'", "unknown kind 'histogram_shape'; the kinds are"),
    ("kind = 'processing'", "version is missing"),
    ("version = 0\nkind = 'processing'", "version must be an integer of at least 1"),
    ("version = 1\nkind = 'processing'\ncolour = 'red'", "unknown field 'colour'"),
    (
        "version = 1\nkind = 'processing'\n[checks.c.parameters]\nfailed_bad = 'many'",
        "parameter failed_bad must be a number, not 'many'",
    ),
    (
        "version = 1\nkind = 'processing'\n[checks.c.parameters]\nfailed_bad = 1.5",
        "parameter failed_bad must be a whole number",
    ),
    (
        "version = 1\nkind = 'processing'\n[checks.c.parameters]\nlimit = 3",
        "a processing check has no parameter 'limit'; its parameters are failed_warning",
    ),
    (
        (
            "version = 1\nkind = 'histogram_vs_reference'\nhistogram = 'calib/charge_pe'\n"
            "[checks.c.parameters]\nwarning_p = 1e-6\nbad_p = 1e-3"
        ),
        r"bad_p \(0.001\) must not be above warning_p \(1e-06\)",
    ),
    (
        (
            "version = 1\nkind = 'variable_in_band'\nvariable = 'energy_scale/k40_ratio'\n"
            "[checks.c.parameters]\nwarning = [0.9, 1.1]\nbad = [0.95, 1.05]"
        ),
        r"the warning band \[0.9, 1.1\] must lie inside the bad band",
    ),
    (
        (
            "version = 1\nkind = 'variable_in_band'\nvariable = 'energy_scale/k41_ratio'\n"
            "[checks.c.parameters]\nwarning = [0.9, 1.1]\nbad = [0.8, 1.2]"
        ),
        "analysis energy_scale has no variable 'k41_ratio'; its variables are",
    ),
    (
        (
            "version = 1\nkind = 'variable_in_band'\nvariable = 'energy/k40_ratio'\n"
            "[checks.c.parameters]\nwarning = [0.9, 1.1]\nbad = [0.8, 1.2]"
        ),
        "no analysis 'energy' is declared",
    ),
    (
        "version = 1\nkind = 'histogram_vs_reference'\nhistogram = 'calib/charge'",
        "there is no histogram 'calib/charge'; the histograms are calib: charge_pe",
    ),
    (
        "version = 1\nkind = 'histogram_vs_reference'",
        "a histogram_vs_reference check needs histogram = 'a/b'",
    ),
    (
        "version = 1\nkind = 'pmt_classes'\nhistogram = 'calib/charge_pe'",
        "a pmt_classes check names no histogram",
    ),
    ("version = 1\nkind = 'processing'\nrun_types = ['cosmics']", "run type 'cosmics' is not one"),
    (
        (
            "version = 1\nkind = 'contents_in_range'\nhistogram = 'rec/r3'\n"
            "[checks.c.parameters]\nlow = 1.0\nhigh = 0.5"
        ),
        r"low \(1\) must not be above high \(0.5\)",
    ),
    (
        (
            "version = 1\nkind = 'contents_in_range'\nhistogram = 'rec/r3'\n[checks.c.parameters]\n"
            "low = 0\nhigh = 1\nwarning_fraction = 0.2\nbad_fraction = 1.5"
        ),
        "parameter bad_fraction must be at most 1",
    ),
    (
        (
            "version = 1\nkind = 'histogram_mean_in_range'\nhistogram = 'rec/energy'\n"
            "[checks.c.parameters]\nbad = [0, 9]"
        ),
        "parameter warning is missing",
    ),
    (
        "version = 1\nkind = 'pmt_sectors_vs_reference'\n[checks.c.parameters]\nquantity = 'gain'",
        "parameter quantity must be 'signal_charge_pe' or",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_a_bad_check_is_one_sentence_naming_file_and_entry(
    tmp_path: Path, analyses, body: str, message: str
) -> None:
    path = write(tmp_path, f"[checks.c]\n{body}\n")
    with pytest.raises(DeclarationError, match=message) as info:
        load_checks(path, analyses=analyses)
    text = str(info.value)
    assert text.startswith(f"{path}: [checks.c]: ") and "\n" not in text


def test_bad_files_duplicates_and_versions_going_backwards(tmp_path: Path, analyses) -> None:
    with pytest.raises(DeclarationError, match="no such file"):
        load_checks(tmp_path / "missing.toml")
    with pytest.raises(DeclarationError, match="is not valid TOML"):
        load_checks(write(tmp_path, "[checks.c\n"))
    with pytest.raises(DeclarationError, match="unknown top-level key 'check'"):
        load_checks(write(tmp_path, "[check.c]\nversion = 1\n"))
    duplicate = "[checks.processing]\nversion = 5\nkind = 'processing'\n"
    with pytest.raises(DeclarationError, match="already declared in .*checks.toml"):
        load_checks(write(tmp_path, duplicate))
    catalog = load_checks(write(tmp_path, GOOD), analyses=analyses)
    check_versions(catalog, {"my_energy": 2})
    with pytest.raises(DeclarationError, match="version 2 is below version 3"):
        check_versions(catalog, {"my_energy": 3})


def test_settings_from_text_make_the_next_version(analyses) -> None:
    check = load_checks(analyses=analyses).get("energy_po210_peak")
    changed = check.with_settings({"warning": "0.447, 0.453", "bad": "[0.44,0.46]"})
    assert changed.version == check.version + 1
    assert changed.parameters["warning"] == (0.447, 0.453)
    with pytest.raises(DeclarationError, match="has no parameter 'colour'"):
        check.with_settings({"colour": "red"})
    with pytest.raises(DeclarationError, match="must be low,high"):
        check.with_settings({"warning": "narrow"})
    with pytest.raises(DeclarationError, match="must lie inside the bad band"):
        check.with_settings({"warning": "0.40,0.50"})
    shape = load_checks(analyses=analyses).get("rec_energy_shape")
    assert shape.with_settings({"method": "ks"}).parameters["method"] == "ks"
    with pytest.raises(DeclarationError, match="must be 'chi2' or 'ks'"):
        shape.with_settings({"method": "anderson"})
