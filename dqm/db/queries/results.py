"""Results of processing: histograms, per-PMT statistics and event tables, per file and per run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from dqm import eventtable, keptevents
from dqm.db.models import EventTable, File, Histogram, Job, KeptEvents, PmtStats, Run
from dqm.errors import InvalidValueError
from dqm.histcodec import (
    AnyHist,
    array_from_bytes,
    decode_histogram,
    encode_histogram,
    pack_array,
)
from dqm.pmtstats import PMT_ARRAYS
from dqm.states import FileState, JobState
from dqm.times import utcnow

#: Run attributes that ``update_run`` may change.


def _of_file(model: type[Histogram | PmtStats], run_id: int, file_id: int | None) -> Any:
    """Rows of one file of a run, or the run's merged row when ``file_id`` is None.

    A file's histograms are selected by ``file_id`` alone (file ids are unique across runs): that
    uses the unique index that starts with ``file_id``, where ``run_id AND file_id`` leads SQLite to
    the ``(run_id, stage, name)`` index and a scan of all the run's rows.
    """
    if file_id is not None and model is Histogram:
        return model.file_id == file_id
    scope = model.file_id.is_(None) if file_id is None else model.file_id == file_id
    return and_(model.run_id == run_id, scope)


def save_histogram(
    session: Session,
    *,
    run_id: int,
    file_id: int | None,
    stage: str,
    name: str,
    histogram: AnyHist,
    title: str | None = None,
    entries: float | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Histogram:
    """Store a histogram of a file (or of the run when ``file_id`` is None), replacing any earlier
    one of the same stage and name, so that storing twice gives the same rows."""
    encoded = encode_histogram(histogram, entries=entries)
    old = session.scalar(
        select(Histogram).where(
            _of_file(Histogram, run_id, file_id),
            Histogram.stage == stage,
            Histogram.name == name,
        )
    )
    row = old or Histogram(run_id=run_id, file_id=file_id, stage=stage, name=name)
    row.title = title
    row.axes = encoded.axes
    row.storage = encoded.storage
    row.values = encoded.values
    row.variances = encoded.variances
    row.entries = encoded.entries
    row.provenance = dict(provenance or {})
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    return row


def histogram_rows(
    session: Session,
    *,
    run_id: int,
    file_id: int | None = None,
    stage: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Histogram]:
    """The stored histograms of a run (``file_id`` None: the run's merged ones), by stage and name."""
    query = select(Histogram).where(
        _of_file(Histogram, run_id, file_id),
    )
    if stage is not None:
        query = query.where(Histogram.stage == stage)
    if names is not None:
        query = query.where(Histogram.name.in_(list(names)))
    return list(session.scalars(query.order_by(Histogram.stage, Histogram.name)))


def histograms_of_files(
    session: Session, *, run_id: int, file_ids: Sequence[int]
) -> dict[int, list[Histogram]]:
    """The stored histograms of several files of a run in one query, by file id (then by stage and
    name)."""
    found: dict[int, list[Histogram]] = {file_id: [] for file_id in file_ids}
    if not found:
        return found
    query = (
        select(Histogram)
        .where(Histogram.run_id == run_id, Histogram.file_id.in_(list(found)))
        .order_by(Histogram.file_id, Histogram.stage, Histogram.name)
    )
    for row in session.scalars(query):
        assert row.file_id is not None
        found[row.file_id].append(row)
    return found


def load_histogram(row: Histogram) -> AnyHist:
    """The ``hist.Hist`` of a stored histogram row."""
    return decode_histogram(row.axes, row.storage, row.values, row.variances)


def save_pmt_stats(
    session: Session,
    *,
    run_id: int,
    file_id: int | None,
    n_events: int,
    livetime_ns: float,
    arrays: Mapping[str, np.ndarray],
    provenance: Mapping[str, Any] | None = None,
) -> PmtStats:
    """Store per-PMT sums of a file (or of the run), replacing earlier ones (idempotent).

    Raises:
        InvalidValueError: an array is missing or the arrays differ in length.
    """
    missing = [name for name in PMT_ARRAYS if name not in arrays]
    if missing:
        raise InvalidValueError(f"PMT statistics lack the array(s) {', '.join(missing)}.")
    lengths = {len(arrays[name]) for name in PMT_ARRAYS}
    if len(lengths) != 1:
        raise InvalidValueError(f"PMT statistics arrays differ in length: {sorted(lengths)}.")
    old = session.scalar(
        select(PmtStats).where(
            _of_file(PmtStats, run_id, file_id),
        )
    )
    row = old or PmtStats(run_id=run_id, file_id=file_id)
    row.n_pmts = lengths.pop()
    row.n_events = n_events
    row.livetime_ns = livetime_ns
    for name in PMT_ARRAYS:
        setattr(row, name, pack_array(arrays[name]))
    row.provenance = dict(provenance or {})
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    return row


def pmt_stats_row(session: Session, *, run_id: int, file_id: int | None = None) -> PmtStats | None:
    """The PMT statistics of a file, or of the run (``file_id`` None), if stored."""
    return session.scalar(
        select(PmtStats).where(
            _of_file(PmtStats, run_id, file_id),
        )
    )


def pmt_stats_of_files(
    session: Session, *, run_id: int, file_ids: Sequence[int]
) -> dict[int, PmtStats]:
    """The PMT statistics of several files of a run in one query, by file id (stored ones only)."""
    if not file_ids:
        return {}
    query = select(PmtStats).where(PmtStats.run_id == run_id, PmtStats.file_id.in_(list(file_ids)))
    return {row.file_id: row for row in session.scalars(query) if row.file_id is not None}


def pmt_arrays(row: PmtStats) -> dict[str, np.ndarray]:
    """The per-PMT arrays of a stored row, by name (see :data:`PMT_ARRAYS`); an array the row
    predates (stored before it was kept) reads as zeros."""
    return {
        name: array_from_bytes(blob) if blob is not None else np.zeros(row.n_pmts)
        for name in PMT_ARRAYS
        for blob in (getattr(row, name),)
    }


def save_event_table(
    session: Session,
    *,
    run_id: int,
    file_id: int,
    columns: Mapping[str, Any],
    sample_size: int | None = None,
) -> EventTable:
    """Store (or replace) a file's reconstructed events (see :mod:`dqm.eventtable`): with
    ``sample_size``, only its part of the run's sample of that size."""
    data = eventtable.encode_event_table(columns, sample_size=sample_size)
    n_events = min(len(columns[eventtable.COLUMNS[0]]), sample_size or np.iinfo(np.int64).max)
    row = session.scalars(select(EventTable).where(EventTable.file_id == file_id)).one_or_none()
    if row is None:
        row = EventTable(run_id=run_id, file_id=file_id, n_events=n_events, data=data)
        session.add(row)
    else:
        row.run_id, row.n_events, row.data, row.created_at = run_id, n_events, data, utcnow()
    session.flush()
    return row


def _event_table_rows(session: Session, run_id: int) -> list[EventTable]:
    """The stored event tables of a run's DONE files, in file order."""
    return list(
        session.scalars(
            select(EventTable)
            .join(File, File.id == EventTable.file_id)
            .where(EventTable.run_id == run_id, File.state == FileState.DONE)
            .order_by(File.seq)
        )
    )


def run_events(session: Session, *, run_id: int, max_events: int | None = None) -> dict[str, Any]:
    """The reconstructed events of a run's DONE files as float32 columns: the run's sample (see
    :mod:`dqm.eventtable`; every event when its files were stored unsampled), in file order, the
    first ``max_events`` of it if given."""
    tables = (eventtable.read_event_table(row.data) for row in _event_table_rows(session, run_id))
    columns = eventtable.merge_tables(tables).columns
    if max_events is not None:
        columns = {name: values[:max_events] for name, values in columns.items()}
    return columns


def has_event_tables(session: Session, *, run_id: int) -> bool:
    """Whether any file of the run has its reconstructed events stored."""
    return (
        session.scalar(select(EventTable.id).where(EventTable.run_id == run_id).limit(1))
        is not None
    )


def save_kept_events(
    session: Session, *, run_id: int, file_id: int, data: bytes, n_events: int
) -> KeptEvents:
    """Store (or replace) a file's kept raw events (encoded by :mod:`dqm.keptevents`)."""
    row = session.scalars(select(KeptEvents).where(KeptEvents.file_id == file_id)).one_or_none()
    if row is None:
        row = KeptEvents(run_id=run_id, file_id=file_id, n_events=n_events, data=data)
        session.add(row)
    else:
        row.run_id, row.n_events, row.data, row.created_at = run_id, n_events, data, utcnow()
    session.flush()
    return row


def kept_events(session: Session, *, run_id: int) -> list[tuple[int, bytes]]:
    """(file sequence number, encoded kept events) of a run's DONE files, in file order."""
    rows = session.execute(
        select(File.seq, KeptEvents.data)
        .join(File, File.id == KeptEvents.file_id)
        .where(KeptEvents.run_id == run_id, File.state == FileState.DONE)
        .order_by(File.seq)
    )
    return [(seq, data) for seq, data in rows]


def run_kept_events(session: Session, *, run_id: int) -> list[keptevents.KeptEvent]:
    """The kept events the event display shows of a run: while the run is at work, every DONE
    file's own first and highest events (how each file began); once it is final, the run's set,
    its first and its highest events (the set the retention policy keeps)."""
    from dqm.db.queries.runs import FINAL_STATUSES

    events = [
        event
        for seq, data in kept_events(session, run_id=run_id)
        for event in keptevents.decode(data, seq=seq)
    ]
    run = session.get(Run, run_id)
    if run is not None and run.status in FINAL_STATUSES:
        return keptevents.reduce_events(events)
    return events


# --- retention -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compaction:
    """What :func:`compact_run` dropped of a run: rows and bytes of per-file results."""

    run_id: int
    histograms: int
    pmt_stats: int
    bytes: int


def runs_to_compact(
    session: Session,
    *,
    before: dt.datetime,
    limit: int = 10,
    run_ids: Sequence[int] | None = None,
) -> list[int]:
    """Runs whose per-file histograms and PMT sums may go: final (All Completed or Failed), ended
    and their last job finished before ``before``, not compacted yet, no job of theirs waiting or
    out, and holding per-file results; the earliest ended first (among ``run_ids`` if given). A
    run processed again (a backfill, a retry) thus waits the whole delay again."""
    from dqm.db.queries.runs import FINAL_STATUSES

    busy = select(Job.id).where(
        Job.run_id == Run.run_id,
        or_(
            Job.state.in_([JobState.TODO, JobState.SUBMITTED, JobState.RUNNING]),
            Job.finished_at >= before,
        ),
    )
    per_file = select(PmtStats.id).where(
        PmtStats.run_id == Run.run_id, PmtStats.file_id.is_not(None)
    )
    per_file_histograms = select(Histogram.id).where(
        Histogram.run_id == Run.run_id, Histogram.file_id.is_not(None)
    )
    query = (
        select(Run.run_id)
        .where(
            Run.status.in_(list(FINAL_STATUSES)),
            Run.compacted_at.is_(None),
            Run.end_time < before,
            ~exists(busy),
            or_(exists(per_file), exists(per_file_histograms)),
        )
        .order_by(Run.end_time)
        .limit(limit)
    )
    if run_ids is not None:
        query = query.where(Run.run_id.in_(list(run_ids)))
    return list(session.scalars(query))


def compact_run(session: Session, *, run_id: int, now: dt.datetime | None = None) -> Compaction:
    """Drop a run's per-file histograms and PMT sums, which only a new merge would read: every
    page, analysis, check, report and export reads the run's merged ones, which stay. Each file's
    reconstructed events are cut down to its part of the run's sample and its kept events to its
    part of the run's set, which is all that a reader of a final run gets of them. The run is
    marked compacted (a merge of it then refuses to run on what is left). Idempotent.

    Raises:
        NotFoundError: no such run.
    """
    from dqm.db.queries.runs import get_run

    run = get_run(session, run_id=run_id)
    sizes = (
        select(
            func.count(),
            func.coalesce(
                func.sum(
                    func.length(Histogram.values)
                    + func.coalesce(func.length(Histogram.variances), 0)
                ),
                0,
            ),
        )
        .select_from(Histogram)
        .where(Histogram.run_id == run_id, Histogram.file_id.is_not(None))
    )
    n_histograms, histogram_bytes = session.execute(sizes).one()
    pmt_bytes = session.scalar(
        select(
            func.coalesce(
                func.sum(
                    sum(
                        (
                            func.coalesce(func.length(getattr(PmtStats, name)), 0)
                            for name in PMT_ARRAYS
                        ),
                        start=literal(0),
                    )
                ),
                0,
            )
        ).where(PmtStats.run_id == run_id, PmtStats.file_id.is_not(None))
    )
    n_pmt = session.scalar(
        select(func.count())
        .select_from(PmtStats)
        .where(PmtStats.run_id == run_id, PmtStats.file_id.is_not(None))
    )
    for model in (Histogram, PmtStats):
        session.execute(delete(model).where(model.run_id == run_id, model.file_id.is_not(None)))
    events_bytes = _cut_event_tables(session, run_id) + _cut_kept_events(session, run_id)
    run.compacted_at = now or utcnow()
    session.flush()
    return Compaction(
        run_id,
        int(n_histograms),
        int(n_pmt or 0),
        int(histogram_bytes) + int(pmt_bytes or 0) + events_bytes,
    )


def _cut_event_tables(session: Session, run_id: int) -> int:
    """Cut each DONE file's event table down to its part of the run's sample (what
    :func:`run_events` reads stays the same); the bytes saved."""
    rows = _event_table_rows(session, run_id)
    tables = [eventtable.read_event_table(row.data) for row in rows]
    run = eventtable.merge_tables(tables)
    if run.sample_size is None:
        return 0
    kept = eventtable.sample_keys(run.columns)
    saved = 0
    for row, table in zip(rows, tables, strict=True):
        inside = np.isin(eventtable.sample_keys(table.columns), kept)
        if inside.all():
            continue
        before = len(row.data)
        if not inside.any():
            session.delete(row)
            saved += before
            continue
        row.data = eventtable.encode_event_table(
            {name: values[inside] for name, values in table.columns.items()},
            sample_size=run.sample_size,
        )
        row.n_events = int(inside.sum())
        saved += before - len(row.data)
    return saved


def _cut_kept_events(session: Session, run_id: int) -> int:
    """Cut each DONE file's kept events down to its part of the run's set (see
    :func:`run_kept_events`); the bytes saved."""
    rows = list(
        session.execute(
            select(KeptEvents, File.seq)
            .join(File, File.id == KeptEvents.file_id)
            .where(KeptEvents.run_id == run_id, File.state == FileState.DONE)
            .order_by(File.seq)
        )
    )
    events = [e for row, seq in rows for e in keptevents.decode(row.data, seq=seq)]
    run_set = keptevents.reduce_events(events)
    saved = 0
    for row, seq in rows:
        part = [e for e in run_set if e.seq == seq]
        before = len(row.data)
        if not part:
            session.delete(row)
            saved += before
            continue
        data = keptevents.encode(part)
        if data != row.data:
            row.data, row.n_events = data, len(part)
            saved += before - len(data)
    return saved
