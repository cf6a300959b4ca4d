"""The merge stage: a run's results as the sum of its done files' (a pure function, in a worker).

The job server reads the files' stored results into a :class:`MergeTask`; :func:`merge_run` adds
them up (rates and other derived histograms recomputed from the summed statistics) into a
:class:`MergeResult`, which the job server stores as the run's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.stages.calib import Sums, merge_results


@dataclass(frozen=True, eq=False)
class MergeTask:
    """What a run's merge sums, and the lineage it passes on.

    Attributes:
        parts: each done file's stored sums, in the order of the files.
        titles: the histograms' titles, by name.
        input_files: the URIs of those files.
        events_read: events read from them (before sampling).
        calibration_versions: the calibration versions the files were processed with, sorted.
        fits_not_converged: the vertex fits of the files that did not converge.
        mask_versions: the PMT mask versions the files were reconstructed with, sorted.
    """

    parts: tuple[Sums, ...]
    titles: dict[str, str]
    input_files: tuple[str, ...]
    events_read: int
    calibration_versions: tuple[int, ...]
    fits_not_converged: int = 0
    mask_versions: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class MergeResult:
    """The run's sums and the lineage of its merge (see :class:`MergeTask`)."""

    sums: Sums
    titles: dict[str, str]
    input_files: tuple[str, ...]
    events_read: int
    calibration_versions: tuple[int, ...]
    fits_not_converged: int = 0
    mask_versions: tuple[int, ...] = ()


def merge_run(task: MergeTask) -> MergeResult:
    """Sum the files' results of a run."""
    return MergeResult(
        sums=merge_results(task.parts),
        titles=task.titles,
        input_files=task.input_files,
        events_read=task.events_read,
        calibration_versions=task.calibration_versions,
        fits_not_converged=task.fits_not_converged,
        mask_versions=task.mask_versions,
    )
