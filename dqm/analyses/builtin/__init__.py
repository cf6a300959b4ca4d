"""The built-in analyses of this detector, declared in ``dqm/analyses/analyses.toml``.

Modules:
    common: PMT types and azimuths, the good PMTs, the run's duration.
    fitting: the unbinned fit of a line on a straight background.
    energy: ``energy_scale`` (physics lines) and ``light_yield`` (calibration sources).
    pmts: ``pmt_health``, ``dark_rate``, ``laser_gain_timing`` and ``sector_occupancy``.
    reconstruction: ``reconstruction`` (fit convergence, time residual, vertex distribution).
    running: ``trigger_rate`` and ``processing``.

What an analysis cannot measure for want of data (too few events for a fit, a run shorter than
one bin) it leaves out: such variables are declared optional, and ``data["not_measured"]`` says
why. An input it needs and does not have raises :class:`~dqm.analyses.api.MissingInput`; a run it
cannot analyse as declared (a source run without a known source) raises :class:`ValueError`.
"""
