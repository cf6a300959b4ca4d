"""The Panel dashboard: state classes (param), Viewer components and the served app.

It reads the DQM database through ``dqm.db`` and never imports ``pipeline``. Layered as data
access → state (no Panel, testable without a server) → views.

Modules:
    source: the only module that reads the database; returns DataFrames, arrays and dataclasses.
    cuts: the PMT cuts of a run and the classes that follow (state, ``param`` only).
    state: the state of the pages (recent runs, a run, the jobs) as ``param`` classes.
    trends: the trends of analysis variables over runs (state, ``param`` only): the choice, the
        points, and the new points of each refresh.
    pmtmap: the PMT map view (cut sliders, counts, the map, the flagged PMTs).
    trendsview: the Trends page (the choice, one plot per variable, new points streamed).
    views: the page views (recent runs, a run's page with its analyses, the jobs).
    main: the app object with its navigation, for ``panel serve``, ``dqm serve`` and notebooks.
    cli: the ``dqm serve`` command.
"""
