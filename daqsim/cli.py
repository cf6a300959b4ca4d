"""The simulator's command: ``dqm simulate`` (added to ``dqm`` through an entry point)."""

from __future__ import annotations

from typing import Any

import click

from dqm.cli import CliContext, pass_cli_ctx
from dqm.errors import InvalidValueError
from dqm.runs import MAX_ID


def _vertex_option(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        x, y, z = (float(part) for part in value.split(","))
    except ValueError:
        raise InvalidValueError(f"vertex {value!r} is not three numbers X,Y,Z in mm.") from None
    return (x, y, z)


@click.command("simulate")
@click.argument("run_id", type=click.IntRange(0, MAX_ID))
@click.option(
    "--type",
    "run_type",
    default="physics",
    show_default=True,
    help="Run type: physics, calibration, laser or random.",
)
@click.option(
    "--files", "n_files", type=int, default=1, show_default=True, help="Number of raw files."
)
@click.option(
    "--events",
    "events_per_file",
    type=int,
    default=1000,
    show_default=True,
    help="Events per file.",
)
@click.option(
    "--rate",
    "trigger_rate_hz",
    type=float,
    default=1000.0,
    show_default=True,
    help="Mean trigger rate, Hz.",
)
@click.option(
    "--light-yield", type=float, default=None, help="Photo-electrons per MeV at the centre [1785]."
)
@click.option("--seed", type=int, default=None, help="Seed of the events [the run id].")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[:k=v,...]",
    help="Inject a fault (repeatable): dead, hot, noisy, gain_drift, time_shift, ly_drop, rate_burst, corrupt, missing. See 'dqm simulate --faults-help'.",
)
@click.option(
    "--source", default=None, help="Calibration source: Cs137, Mn54, Ge68, K40, Co60, AmC."
)
@click.option(
    "--source-z",
    "source_z_mm",
    type=float,
    default=0.0,
    show_default=True,
    help="Source position on the central axis, mm.",
)
@click.option(
    "--laser-pe",
    type=float,
    default=0.5,
    show_default=True,
    help="Laser intensity, mean photo-electrons per PMT.",
)
@click.option(
    "--energy",
    "energy_mev",
    type=float,
    default=None,
    help="Fixed visible energy, MeV (physics runs).",
)
@click.option("--vertex", default=None, metavar="X,Y,Z", help="Fixed vertex, mm (physics runs).")
@click.option("--start", "start_time", default=None, help="Start time, ISO 8601 [now].")
@click.option(
    "-j", "--jobs", "n_jobs", type=int, default=2, show_default=True, help="Worker processes."
)
@click.option(
    "--notify", is_flag=True, help="Publish run_start, file_ready and run_end on the broker."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the files of an existing run of the same id."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--faults-help",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _p, v: _faults_help(ctx, v),
    help="Explain the faults and exit.",
)
@pass_cli_ctx
def simulate(
    cli_ctx: CliContext,
    /,
    run_id: int,
    faults: tuple[str, ...],
    vertex: str | None,
    start_time: str | None,
    quiet: bool,
    notify: bool,
    overwrite: bool,
    light_yield: float | None,
    **options: Any,
) -> None:
    """Simulate run RUN_ID as raw ROOT files (the DAQ and data transfer stand-in).

    Files go to <raw root>/<run>/<run>.<seq>.root; truth sidecars and the fault manifest to
    <data dir>/truth/<run>/.
    """
    from daqsim import SimulationConfig, parse_fault, simulate_run
    from dqm.times import parse_time

    config = SimulationConfig(
        run_id=run_id,
        faults=tuple(parse_fault(text) for text in faults),
        vertex_mm=_vertex_option(vertex),
        start_time=None if start_time is None else parse_time(start_time, what="start time"),
        **({} if light_yield is None else {"light_yield": light_yield}),
        **options,
    )
    result = simulate_run(
        config, cli_ctx.settings, overwrite=overwrite, notify=notify, progress=not quiet
    )
    delivered = [f for f in result.files if f.delivered]
    click.echo(
        f"run {result.run_id} ({result.run_type}): {result.n_events} events in {len(result.files)} file(s) "
        f"under {cli_ctx.settings.raw_dir / str(run_id)}"
        + (
            f", {len(result.files) - len(delivered)} not delivered"
            if len(delivered) < len(result.files)
            else ""
        )
        + (", messages published" if notify else "")
        + f"; truth in {result.manifest.parent if result.manifest else '-'}."
    )


def _faults_help(ctx: click.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from daqsim import faults

    click.echo(faults.__doc__)
    ctx.exit(0)
