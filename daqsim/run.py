"""Simulation of a whole run: events generated in parallel chunks, written as raw ROOT files.

Worker processes (joblib/loky) generate chunks of events; the main process writes them in order,
so the output does not depend on the number of workers and memory stays bounded by a few chunks
whatever the file size. Every file is written under a temporary name and renamed when complete;
the truth sidecar (``data_dir/truth/<run>/<run>.<seq>.truth.npz``) and the fault manifest
(``data_dir/truth/<run>/<run>.faults.json``) likewise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import joblib
import numpy as np
import uproot
from tqdm import tqdm

from daqsim import model
from daqsim.events import ChunkTask, generate_chunk
from daqsim.faults import Fault, resolve_pmts, validate_faults
from dqm import __version__, detector, messages, rawformat
from dqm.config import Settings
from dqm.errors import InvalidValueError
from dqm.times import utcnow

#: Fraction of periodic random triggers mixed into physics runs (dark noise, pedestals).
RANDOM_TRIGGER_FRACTION = 0.01
#: Margin kept between a source and the acrylic vessel, mm.
SOURCE_MARGIN_MM = 200.0
#: Events generated per chunk (a worker's unit of work).
DEFAULT_CHUNK_EVENTS = 250


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Attributes:
        run_id: run number.
        run_type: physics, calibration, laser or random.
        n_files: number of raw files (sequence numbers 0..n_files-1).
        events_per_file: events in each file.
        trigger_rate_hz: mean trigger rate (Poisson arrivals; periodic for random-trigger runs).
        light_yield: photo-electrons per MeV at the centre.
        seed: seed of the run's events (default: the run id).
        faults: faults to inject.
        source: calibration source (Cs137, Mn54, Ge68, K40, Co60, AmC) for calibration runs.
        source_z_mm: source position on the central axis, mm.
        laser_pe: mean photo-electrons per PMT of a laser flash.
        energy_mev: a fixed visible energy for physics runs instead of the physics mixture.
        vertex_mm: a fixed vertex for physics runs instead of uniform in the sphere.
        random_trigger_fraction: fraction of random triggers in physics runs.
        detector: detector name.
        start_time: start of the run (UTC; default now).
        chunk_events: events per chunk of work.
        n_jobs: worker processes (1: no worker processes).
    """

    run_id: int
    run_type: str = "physics"
    n_files: int = 1
    events_per_file: int = 1000
    trigger_rate_hz: float = 1000.0
    light_yield: float = detector.LIGHT_YIELD_PE_PER_MEV
    seed: int | None = None
    faults: tuple[Fault, ...] = ()
    source: str | None = None
    source_z_mm: float = 0.0
    laser_pe: float = 0.5
    energy_mev: float | None = None
    vertex_mm: tuple[float, float, float] | None = None
    random_trigger_fraction: float = RANDOM_TRIGGER_FRACTION
    detector: str = "CD"
    start_time: dt.datetime | None = None
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    n_jobs: int = 1

    @property
    def run_seed(self) -> int:
        return self.run_id if self.seed is None else self.seed

    def validate(self) -> None:
        """Raise :class:`InvalidValueError` with one sentence for the first invalid setting."""
        if self.run_id < 0:
            raise InvalidValueError(f"run id {self.run_id} is negative.")
        if self.run_type not in messages.RUN_TYPES:
            raise InvalidValueError(
                f"unknown run type {self.run_type!r}; use one of {', '.join(messages.RUN_TYPES)}."
            )
        for name in ("n_files", "events_per_file", "chunk_events", "n_jobs"):
            value = getattr(self, name)
            if value < 1:
                raise InvalidValueError(
                    f"{name.replace('_', ' ')} must be at least 1, got {value}."
                )
        if not 0 < self.trigger_rate_hz <= 1e6:
            raise InvalidValueError(f"trigger rate {self.trigger_rate_hz} Hz must be in (0, 1e6].")
        if not 0 < self.light_yield <= 1e5:
            raise InvalidValueError(f"light yield {self.light_yield} PE/MeV must be in (0, 1e5].")
        if self.seed is not None and self.seed < 0:
            raise InvalidValueError(f"seed {self.seed} is negative.")
        if self.run_type == "calibration":
            if self.source not in model.SOURCES:
                raise InvalidValueError(
                    f"calibration source {self.source!r} is unknown; use one of {', '.join(model.SOURCES)}."
                )
            limit = detector.LS_RADIUS_MM - SOURCE_MARGIN_MM
            if abs(self.source_z_mm) > limit:
                raise InvalidValueError(
                    f"source position z={self.source_z_mm:g} mm is outside the detector "
                    f"(|z| must be at most {limit:g} mm)."
                )
        elif self.source is not None:
            raise InvalidValueError(
                f"a source is given but the run type is {self.run_type}, not calibration."
            )
        if self.run_type == "laser" and not 0 < self.laser_pe <= 100:
            raise InvalidValueError(
                f"laser intensity {self.laser_pe} PE per PMT must be in (0, 100]."
            )
        if self.energy_mev is not None and not 0 < self.energy_mev <= 200:
            raise InvalidValueError(f"energy {self.energy_mev} MeV must be in (0, 200].")
        if self.vertex_mm is not None:
            radius = float(np.linalg.norm(self.vertex_mm))
            if radius > detector.LS_RADIUS_MM:
                raise InvalidValueError(
                    f"vertex at radius {radius:.0f} mm is outside the scintillator ({detector.LS_RADIUS_MM:.0f} mm)."
                )
        if (
            self.energy_mev is not None or self.vertex_mm is not None
        ) and self.run_type != "physics":
            raise InvalidValueError("a fixed energy or vertex is only for physics runs.")
        if not 0 <= self.random_trigger_fraction < 1:
            raise InvalidValueError(
                f"random-trigger fraction {self.random_trigger_fraction} must be in [0, 1)."
            )
        validate_faults(list(self.faults), self.n_files)


@dataclass
class SimulatedFile:
    """A file of a simulated run as data transfer announces it."""

    seq: int
    path: Path
    size: int
    checksum: str
    n_events: int
    delivered: bool = True
    corrupt: bool = False


@dataclass
class SimulationResult:
    """What a simulation produced."""

    run_id: int
    run_type: str
    start_time: dt.datetime
    end_time: dt.datetime
    files: list[SimulatedFile] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def n_events(self) -> int:
        return sum(f.n_events for f in self.files)


def _file_states(
    config: SimulationConfig, pmts_of: dict[str, list[int]]
) -> list[model.DetectorState]:
    """The true detector constants of each file, faults applied."""
    nominal = model.nominal_detector(config.light_yield)
    by_kind = {f.kind: f for f in config.faults}
    pde = nominal.pde_rel.copy()
    dark = nominal.dark_rate_hz.copy()
    hot = nominal.hot_occupancy.copy()
    if "dead" in pmts_of:
        pde[pmts_of["dead"]] = 0.0
        dark[pmts_of["dead"]] = 0.0
    if "hot" in pmts_of:
        hot[pmts_of["hot"]] = by_kind["hot"].params["occupancy"]
    if "noisy" in pmts_of:
        dark[pmts_of["noisy"]] = by_kind["noisy"].params["rate_hz"]
    base = nominal.evolve(pde_rel=pde, dark_rate_hz=dark, hot_occupancy=hot)

    states = []
    for seq in range(config.n_files):
        gain = base.gain.copy()
        offset = base.offset_ns.copy()
        light_yield = base.light_yield
        if "gain_drift" in by_kind:
            step = (seq + 1) / config.n_files
            gain[pmts_of["gain_drift"]] *= 1.0 + by_kind["gain_drift"].params["fraction"] * step
        if "time_shift" in by_kind and seq >= by_kind["time_shift"].params["from_seq"]:
            offset[pmts_of["time_shift"]] += by_kind["time_shift"].params["shift_ns"]
        if "ly_drop" in by_kind and seq >= by_kind["ly_drop"].params["from_seq"]:
            light_yield *= 1.0 - by_kind["ly_drop"].params["fraction"]
        states.append(base.evolve(gain=gain, offset_ns=offset, light_yield=light_yield))
    return states


def _tasks(config: SimulationConfig, states: Sequence[model.DetectorState]) -> Iterator[ChunkTask]:
    burst = next((f for f in config.faults if f.kind == "rate_burst"), None)
    for seq, state in enumerate(states):
        rate = config.trigger_rate_hz
        if burst is not None and burst.params["seq"] == seq:
            rate *= burst.params["factor"]
        for chunk, first in enumerate(range(0, config.events_per_file, config.chunk_events)):
            yield ChunkTask(
                run_type=config.run_type,
                seq=seq,
                chunk=chunk,
                n=min(config.chunk_events, config.events_per_file - first),
                seed=config.run_seed,
                state=state,
                trigger_rate_hz=rate,
                source_energy=model.SOURCES.get(config.source or ""),
                source_z_mm=config.source_z_mm,
                laser_pe=config.laser_pe,
                energy_mev=config.energy_mev,
                vertex_mm=config.vertex_mm,
                random_trigger_fraction=config.random_trigger_fraction,
            )


def _prepare_directories(run_dir: Path, truth_dir: Path, run_id: int, overwrite: bool) -> None:
    for directory in (run_dir, truth_dir):
        if directory.exists() and any(directory.iterdir()):
            if not overwrite:
                raise InvalidValueError(
                    f"run {run_id} exists already in {directory}; add --overwrite to replace it."
                )
            shutil.rmtree(directory)
    for directory in (run_dir, truth_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise InvalidValueError(
                f"cannot write to {directory}: {exc.strerror or exc}."
            ) from None


def _corrupt(path: Path, mode: str, seed: int) -> None:
    size = path.stat().st_size
    if mode == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(int(size * 0.6))
    else:
        rng = np.random.default_rng([seed, 0xBAD])
        with open(path, "r+b") as fh:
            fh.seek(size // 2)
            fh.write(rng.integers(0, 256, min(65_536, size // 4), dtype=np.uint8).tobytes())


def _atomic_json(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(content, indent=2, default=str))
    os.replace(tmp, path)


def simulate_run(
    config: SimulationConfig,
    settings: Settings,
    *,
    overwrite: bool = False,
    notify: bool = False,
    progress: bool = True,
    publish: Callable[..., None] | None = None,
) -> SimulationResult:
    """Simulate a run and write its raw files, truth sidecars and fault manifest.

    Args:
        config: what to simulate (validated first).
        settings: where to write (the first raw root, ``data_dir/truth``) and the broker.
        overwrite: replace the files of an existing run of the same id.
        notify: publish run_start, file_ready (per file, when it is complete) and run_end.
        progress: show a progress bar on standard error.
        publish: how to publish messages (default :func:`dqm.broker.publish`).

    Raises:
        InvalidValueError: a setting is invalid, the run exists (without ``overwrite``) or a directory
            cannot be written. Nothing is left half-written.
    """
    config.validate()
    run_dir = settings.raw_dir / str(config.run_id)
    truth_dir = settings.data_dir / "truth" / str(config.run_id)
    _prepare_directories(run_dir, truth_dir, config.run_id, overwrite)
    if notify and publish is None:
        from dqm import broker

        def publish(*items: messages.Message) -> None:
            broker.publish(settings, *items)

    # None: no messages (notify off); with notify, publish has just been set.
    send = publish if notify else None

    pmts_of = resolve_pmts(list(config.faults), config.run_seed)
    states = _file_states(config, pmts_of)
    start_time = (config.start_time or utcnow()).replace(microsecond=0)
    by_kind = {f.kind: f for f in config.faults}
    corrupt_seq = by_kind["corrupt"].params["seq"] if "corrupt" in by_kind else None
    missing_seq = by_kind["missing"].params["seq"] if "missing" in by_kind else None

    if send is not None:
        send(
            messages.make(
                "run_start",
                run_id=config.run_id,
                run_type=config.run_type,
                start_time=start_time,
                detector=config.detector,
                source=config.source,
                source_z_mm=config.source_z_mm if config.run_type == "calibration" else None,
                trigger_rate_hz=config.trigger_rate_hz,
                software_version=f"dqm-simulator {__version__}",
            )
        )

    result = SimulationResult(config.run_id, config.run_type, start_time, start_time)
    run_info = {
        "run_id": config.run_id,
        "run_type": config.run_type,
        "detector": config.detector,
        "start_time": start_time.isoformat(),
        "source": config.source,
        "source_z_mm": config.source_z_mm if config.run_type == "calibration" else None,
        "trigger_rate_hz": config.trigger_rate_hz,
        "software_version": f"dqm-simulator {__version__}",
    }
    total = config.n_files * config.events_per_file
    bar = tqdm(
        total=total, unit="ev", unit_scale=True, disable=not progress, desc=f"run {config.run_id}"
    )
    parallel = joblib.Parallel(n_jobs=config.n_jobs, return_as="generator", pre_dispatch="2*n_jobs")
    chunks = parallel(joblib.delayed(generate_chunk)(task) for task in _tasks(config, states))
    clock_ns = 0.0
    next_event_id = 0
    tmp: Path | None = None
    try:
        for seq, state in enumerate(states):
            path = rawformat.raw_file_path(settings.raw_dir, config.run_id, seq)
            tmp = path.with_name(path.name + ".part")
            truth: dict[str, list[np.ndarray]] = {
                k: [] for k in ("event_id", "energy_mev", "vertex_mm", "t0_ns", "kind")
            }
            n_written = 0
            with uproot.recreate(tmp, compression=uproot.ZSTD(1)) as out:
                out.mktree(
                    rawformat.EVENTS_TREE,
                    {
                        **{name: dtype for name, dtype in rawformat.EVENT_BRANCHES.items()},
                        "hits": "var * {pmt_id: int32, adc: float32, tdc: float32}",
                    },
                )
                while n_written < config.events_per_file:
                    chunk = next(chunks)
                    n = len(chunk["nhits"])
                    event_id = np.arange(next_event_id, next_event_id + n, dtype=np.uint64)
                    trigger_time = clock_ns + np.cumsum(chunk["dt_ns"])
                    clock_ns = float(trigger_time[-1])
                    hits = ak.unflatten(
                        ak.zip(
                            {"pmt_id": chunk["pmt_id"], "adc": chunk["adc"], "tdc": chunk["tdc"]}
                        ),
                        chunk["nhits"],
                    )
                    out[rawformat.EVENTS_TREE].extend(
                        {
                            "event_id": event_id,
                            "trigger_time": trigger_time.astype(np.int64),
                            "trigger_type": chunk["trigger_type"],
                            "hits": hits,
                        }
                    )
                    truth["event_id"].append(event_id)
                    for key in ("energy_mev", "vertex_mm", "t0_ns", "kind"):
                        truth[key].append(chunk[key])
                    next_event_id += n
                    n_written += n
                    bar.update(n)
                out[rawformat.RUN_INFO_KEY] = json.dumps({**run_info, "seq": seq}, sort_keys=True)
            corrupt = seq == corrupt_seq
            if corrupt:
                _corrupt(tmp, by_kind["corrupt"].params["mode"], config.run_seed)
            size = tmp.stat().st_size
            checksum = rawformat.adler32_file(tmp)
            delivered = seq != missing_seq
            if delivered:
                os.replace(tmp, path)
            else:
                tmp.unlink()
            tmp = None
            truth_path = truth_dir / f"{config.run_id}.{seq}.truth.npz"
            truth_tmp = truth_dir / f"{config.run_id}.{seq}.truth.part.npz"
            np.savez_compressed(
                truth_tmp,
                allow_pickle=False,  # numbers only; named, so no array can stand for it
                **{key: np.concatenate(values) for key, values in truth.items()},
                gain=state.gain,
                offset_ns=state.offset_ns,
                dark_rate_hz=state.dark_rate_hz,
                pde_rel=state.pde_rel,
                hot_occupancy=state.hot_occupancy,
                light_yield=np.float64(state.light_yield),
            )
            os.replace(truth_tmp, truth_path)
            sim_file = SimulatedFile(seq, path, size, checksum, n_written, delivered, corrupt)
            result.files.append(sim_file)
            if send is not None:
                send(
                    messages.make(
                        "file_ready",
                        run_id=config.run_id,
                        seq=seq,
                        uri=str(path),
                        size=size,
                        checksum=checksum,
                        n_events=n_written,
                    )
                )
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        chunks.close()  # stops the workers if the run ended early
        bar.close()

    result.end_time = start_time + dt.timedelta(microseconds=int(clock_ns / 1000))
    manifest = {
        "run_id": config.run_id,
        "config": {k: v for k, v in asdict(config).items() if k not in ("faults", "start_time")},
        "start_time": start_time.isoformat(),
        "end_time": result.end_time.isoformat(),
        "faults": [fault.to_dict() for fault in config.faults],
        "pmts": pmts_of,
        "files": [
            {
                "seq": f.seq,
                "path": str(f.path),
                "size": f.size,
                "checksum": f.checksum,
                "n_events": f.n_events,
                "delivered": f.delivered,
                "corrupt": f.corrupt,
            }
            for f in result.files
        ],
    }
    result.manifest = truth_dir / f"{config.run_id}.faults.json"
    _atomic_json(result.manifest, manifest)
    if send is not None:
        send(
            messages.make(
                "run_end",
                run_id=config.run_id,
                end_time=result.end_time,
                n_files=len(result.files),
                n_events=result.n_events,
            )
        )
    return result
