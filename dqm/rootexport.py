"""Export of a run's histograms and PMT statistics to a ROOT file (``dqm export``).

The file holds what the DQM database holds for the run as a whole (the merge of its files):

- one directory per stage (``calib/``, ``rec/``, ...) with every histogram of that stage as a
  ``TH1D``, ``TH2D`` or ``TH3D`` named as in the database: the histogram's title, its axes' labels as
  axis titles, regular or variable binning (integer axes become unit-wide bins from their start,
  category axes labelled bins), the number of entries, the under- and overflow bins (zero along an
  axis that has none), and ``Sumw2`` for weighted histograms (for unweighted ones ROOT's default
  errors, the square root of the content, are the variances);
- the tree ``pmt_stats``, one entry per PMT: ``pmt_id``, every stored per-PMT sum
  (:data:`dqm.pmtstats.PMT_ARRAYS`, as stored: float64) and the quantities derived from them
  (:data:`dqm.pmtstats.DERIVED`);
- ``run_info``, a ``TObjString`` holding JSON: the run's attributes, the event count and live time
  of the PMT statistics, the provenance of each stage's histograms, and the version of the exporter.

In ROOT: ``TFile f("run.root"); f.Get<TH1D>("calib/charge_pe")->Draw();
pmt_stats->Draw("dark_rate_hz"); f.Get<TObjString>("run_info")->GetString()``.

The file is written under a temporary name in the target directory and renamed at the end, so a
failed export leaves neither a partial file nor a damaged earlier one.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import hist
import numpy as np
from sqlalchemy.orm import Session

from dqm import __version__
from dqm.db import queries
from dqm.errors import DQMError, InvalidValueError, NotFoundError
from dqm.histcodec import AnyHist
from dqm.pmtstats import DERIVED, PMT_ARRAYS, derived_pmt_quantities
from dqm.runs import run_attributes
from dqm.times import format_time, utcnow

if TYPE_CHECKING:
    from boost_histogram.view import WeightedSumView

__all__ = [
    "PMT_TREE",
    "RUN_INFO",
    "ExportedHistogram",
    "RunExport",
    "check_output_path",
    "collect_run",
    "export_run",
    "histogram_to_root",
    "pmt_table",
    "write_root",
]

#: Name of the per-PMT tree in the exported file.
PMT_TREE = "pmt_stats"
#: Name of the run's metadata (a TObjString of JSON) in the exported file.
RUN_INFO = "run_info"

#: errno values that mean the output path itself is unusable (bad input rather than a failure).
_PATH_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EROFS,
    errno.ENAMETOOLONG,
}


@dataclass(frozen=True)
class ExportedHistogram:
    """A run-level histogram as it goes into the file."""

    stage: str
    name: str
    title: str
    histogram: AnyHist
    entries: float
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Its path in the file: ``stage/name``."""
        return f"{self.stage}/{self.name}"


@dataclass(frozen=True)
class RunExport:
    """Everything the file of one run holds, read from the database."""

    run_id: int
    histograms: list[ExportedHistogram]
    pmt_columns: dict[str, np.ndarray] | None  # the pmt_stats tree, by branch; None: not stored
    info: dict[str, Any]  # the run_info JSON

    @property
    def n_pmts(self) -> int:
        return 0 if self.pmt_columns is None else len(self.pmt_columns["pmt_id"])


# --- histograms --------------------------------------------------------------------------------


def _root_axis(axis: Any) -> tuple[dict[str, Any], np.ndarray]:
    """The ``to_TAxis`` arguments of a hist axis (without its name) and the bin centres ROOT uses."""
    from uproot.writing.identify import to_THashList, to_TObjString

    title = str(axis.label or axis.name or "")
    if isinstance(axis, hist.axis.StrCategory | hist.axis.IntCategory):
        n = len(axis)
        labels = to_THashList([to_TObjString(str(label)) for label in axis])
        for index, label in enumerate(labels):  # as TAxis::SetBinLabel numbers them
            label._bases[0]._members["@fUniqueID"] = index + 1
        arguments = {"fTitle": title, "fNbins": n, "fXmin": 0.0, "fXmax": float(n)}
        return {**arguments, "fLabels": labels}, np.arange(n) + 0.5
    edges = np.asarray(axis.edges, dtype=np.float64)
    n = len(edges) - 1
    arguments = {"fTitle": title, "fNbins": n, "fXmin": float(edges[0]), "fXmax": float(edges[-1])}
    uniform = isinstance(axis, hist.axis.Regular) and axis.transform is None
    if not uniform and not isinstance(axis, hist.axis.Integer | hist.axis.Boolean):
        arguments["fXbins"] = edges
    return arguments, (edges[:-1] + edges[1:]) / 2.0


def _to_root_layout(view: np.ndarray, axes: Sequence[Any]) -> np.ndarray:
    """Contents with flow bins as hist holds them (a flow bin only where the axis has one) placed in
    ROOT's layout (under- and overflow on every axis; zero where hist has none)."""
    shape = tuple(len(axis) + 2 for axis in axes)
    out = np.zeros(shape, dtype=np.float64)
    slices = []
    for axis, size in zip(axes, view.shape, strict=True):
        start = 0 if axis.traits.underflow else 1
        slices.append(slice(start, start + size))
    out[tuple(slices)] = view
    return out


def _statistics(
    values: np.ndarray, variances: np.ndarray, centres: list[np.ndarray]
) -> list[float]:
    """ROOT's summary sums over the in-range bins: Tsumw, Tsumw2, then per axis Tsumwx, Tsumwx2,
    and the cross terms (xy; for three axes xz and yz too)."""
    inner = tuple(slice(1, -1) for _ in centres)
    w = values[inner]
    grids = np.meshgrid(*centres, indexing="ij")
    sums = [float(w.sum()), float(variances[inner].sum())]
    moments = []
    for grid in grids:
        moments += [float((w * grid).sum()), float((w * grid**2).sum())]
    if len(grids) == 1:
        return sums + moments
    cross = [float((w * grids[0] * grids[1]).sum())]
    if len(grids) == 2:
        return sums + moments[:4] + cross
    cross += [float((w * grids[0] * grids[2]).sum()), float((w * grids[1] * grids[2]).sum())]
    return sums + moments[:4] + cross[:1] + moments[4:] + cross[1:]


def histogram_to_root(h: AnyHist, *, title: str = "", entries: float | None = None) -> Any:
    """A ``hist.Hist`` of 1 to 3 axes as a writable ROOT ``TH1D``/``TH2D``/``TH3D`` (uproot model).

    Args:
        h: the histogram (Double, Int64 or Weight storage).
        title: the histogram's title.
        entries: ROOT's number of entries; by default the sum of all bins, flow bins included.

    Raises:
        ValueError: more than three axes, or a storage other than Double, Int64 or Weight.
    """
    from uproot.writing.identify import to_TAxis, to_TH1x, to_TH2x, to_TH3x

    ndim = len(h.axes)
    if not 1 <= ndim <= 3:
        raise ValueError(f"a histogram of {ndim} axes has no ROOT counterpart (TH1 to TH3).")
    view = h.view(flow=True)
    if h.storage_type is hist.storage.Weight:
        # fields value and variance (boost-histogram types any storage's view as a plain array)
        weighted = cast("WeightedSumView", view)
        values = _to_root_layout(np.asarray(weighted["value"]), h.axes)
        variances = _to_root_layout(np.asarray(weighted["variance"]), h.axes)
        sumw2: np.ndarray | None = variances.T.reshape(-1).astype(">f8")
    elif h.storage_type in (hist.storage.Double, hist.storage.Int64):
        values = _to_root_layout(np.asarray(view, dtype=np.float64), h.axes)
        variances = values  # unit weights: ROOT's errors without Sumw2
        sumw2 = None
    else:
        raise ValueError(f"histogram storage {h.storage_type.__name__} has no ROOT counterpart.")
    axes_arguments, centres = zip(*(_root_axis(axis) for axis in h.axes), strict=True)
    root_axes = [
        to_TAxis(fName=name, **arguments)
        for name, arguments in zip(("xaxis", "yaxis", "zaxis"), axes_arguments, strict=False)
    ]
    stats = _statistics(values, variances, list(centres))
    data = values.T.reshape(-1).astype(">f8")  # ROOT's bin order: x fastest
    common = {
        "fName": None,
        "fTitle": title,
        "data": data,
        "fEntries": float(values.sum()) if entries is None else float(entries),
        "fSumw2": sumw2,
    }
    if ndim == 1:
        names: tuple[str, ...] = ("fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2")
        return to_TH1x(**common, **dict(zip(names, stats, strict=True)), fXaxis=root_axes[0])
    if ndim == 2:
        names = ("fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2", "fTsumwy", "fTsumwy2", "fTsumwxy")
        return to_TH2x(
            **common,
            **dict(zip(names, stats, strict=True)),
            fXaxis=root_axes[0],
            fYaxis=root_axes[1],
        )
    names = (
        "fTsumw",
        "fTsumw2",
        "fTsumwx",
        "fTsumwx2",
        "fTsumwy",
        "fTsumwy2",
        "fTsumwxy",
        "fTsumwz",
        "fTsumwz2",
        "fTsumwxz",
        "fTsumwyz",
    )
    return to_TH3x(
        **common,
        **dict(zip(names, stats, strict=True)),
        fXaxis=root_axes[0],
        fYaxis=root_axes[1],
        fZaxis=root_axes[2],
    )


# --- PMT statistics ----------------------------------------------------------------------------


def pmt_table(
    arrays: Mapping[str, np.ndarray], *, n_events: int, livetime_ns: float
) -> dict[str, np.ndarray]:
    """The branches of the ``pmt_stats`` tree: ``pmt_id`` (int32), the stored sums and the derived
    quantities (float64), one entry per PMT."""
    n = len(arrays["hit_count"])
    columns: dict[str, np.ndarray] = {"pmt_id": np.arange(n, dtype=np.int32)}
    for name in PMT_ARRAYS:
        columns[name] = np.asarray(arrays[name], dtype=np.float64)
    derived = derived_pmt_quantities(arrays, n_events=n_events, livetime_ns=livetime_ns)
    columns.update({name: derived[name] for name in DERIVED})
    return columns


# --- reading the run ---------------------------------------------------------------------------


def _stage_provenance(histograms: Iterable[ExportedHistogram]) -> dict[str, Any]:
    """Provenance by stage: one record when all its histograms share it, else one per histogram."""
    by_stage: dict[str, dict[str, dict[str, Any]]] = {}
    for h in histograms:
        by_stage.setdefault(h.stage, {})[h.name] = h.provenance
    out: dict[str, Any] = {}
    for stage, records in by_stage.items():
        distinct = {json.dumps(r, sort_keys=True, default=str) for r in records.values()}
        out[stage] = (
            next(iter(records.values())) if len(distinct) == 1 else {"by_histogram": records}
        )
    return out


def collect_run(session: Session, run_id: int, *, stages: Sequence[str] | None = None) -> RunExport:
    """Read the run-level histograms (of ``stages`` if given) and PMT statistics of a run.

    Raises:
        NotFoundError: no such run, the run has no run-level histograms yet, or none of the stages
            asked for.
    """
    run = queries.get_run(session, run_id=run_id)
    rows = queries.histogram_rows(session, run_id=run_id)
    if not rows:
        raise NotFoundError(
            f"run {run_id} has no histograms yet (status {run.status.value}); they are stored "
            f"when its files are processed and merged (see 'dqm jobs --run {run_id}')."
        )
    present = sorted({row.stage for row in rows})
    if stages:
        unknown = sorted(set(stages) - set(present))
        if unknown:
            raise NotFoundError(
                f"run {run_id} has no histograms of stage {', '.join(map(repr, unknown))}; "
                f"it has {', '.join(present)}."
            )
        rows = [row for row in rows if row.stage in stages]
    histograms = [
        ExportedHistogram(
            stage=row.stage,
            name=row.name,
            title=row.title or row.name,
            histogram=queries.load_histogram(row),
            entries=float(row.entries),
            provenance=dict(row.provenance or {}),
        )
        for row in rows
    ]
    stats = queries.pmt_stats_row(session, run_id=run_id)
    columns = None
    pmt_info = None
    if stats is not None:
        columns = pmt_table(
            queries.pmt_arrays(stats), n_events=stats.n_events, livetime_ns=stats.livetime_ns
        )
        pmt_info = {
            "n_pmts": stats.n_pmts,
            "n_events": stats.n_events,
            "livetime_ns": stats.livetime_ns,
            "branches": {
                "pmt_id": "PMT id",
                **{name: "sum over the run's events, as stored" for name in PMT_ARRAYS},
                **DERIVED,
            },
            "provenance": dict(stats.provenance or {}),
        }
    info = {
        "run": run_attributes(run),
        "histograms": {
            stage: sorted(h.name for h in histograms if h.stage == stage)
            for stage in sorted({h.stage for h in histograms})
        },
        "provenance": _stage_provenance(histograms),
        "pmt_stats": pmt_info,
        "export": {"dqm_version": __version__, "exported_at": format_time(utcnow())},
    }
    return RunExport(run_id=run_id, histograms=histograms, pmt_columns=columns, info=info)


# --- writing -----------------------------------------------------------------------------------


def check_output_path(path: Path) -> None:
    """Refuse an output path that cannot be written (before any work is done).

    Raises:
        InvalidValueError: a directory, a missing directory, or one without write permission.
    """
    if path.is_dir():
        raise InvalidValueError(
            f"{path} is a directory; give a file name, e.g. {path / 'run.root'}."
        )
    parent = path.parent
    if not parent.is_dir():
        raise InvalidValueError(f"cannot write {path}: the directory {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidValueError(f"cannot write {path}: the directory {parent} is not writable.")


def write_root(export: RunExport, path: str | os.PathLike[str]) -> Path:
    """Write ``export`` to the ROOT file ``path`` (replacing it), atomically.

    Raises:
        InvalidValueError: the path cannot be written (a directory, no such directory, no
            permission).
        DQMError: writing failed (disk full, ...); nothing is left behind.
    """
    import uproot

    path = Path(path)
    check_output_path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with uproot.recreate(temporary) as file:
            file[RUN_INFO] = json.dumps(export.info, indent=1, default=str)
            for h in export.histograms:
                file[h.path] = histogram_to_root(h.histogram, title=h.title, entries=h.entries)
            if export.pmt_columns is not None:
                columns = export.pmt_columns
                tree = file.mktree(
                    PMT_TREE,
                    {name: values.dtype for name, values in columns.items()},
                    title=f"PMT statistics of run {export.run_id}",
                )
                tree.extend(columns)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        if exc.errno in _PATH_ERRORS:
            raise InvalidValueError(f"cannot write {path}: {reason}.") from None
        raise DQMError(f"writing {path} failed: {reason}; nothing was written.") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def export_run(
    session: Session,
    run_id: int,
    path: str | os.PathLike[str],
    *,
    stages: Sequence[str] | None = None,
) -> RunExport:
    """Write the run-level histograms and PMT statistics of ``run_id`` to the ROOT file ``path``.

    Raises:
        NotFoundError: no such run, or nothing to export (see :func:`collect_run`).
        InvalidValueError, DQMError: as :func:`write_root`.
    """
    check_output_path(Path(path))  # before reading anything
    export = collect_run(session, run_id, stages=stages)
    write_root(export, path)
    return export
