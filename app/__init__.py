"""The Panel dashboard: state classes (param), Viewer components and the served app.

It reads the DQM database through ``dqm.db`` and never imports ``pipeline``. Layered as data
access → state (no Panel, testable without a server) → views.

Modules:
    source: the only module that reads the database; returns DataFrames, arrays and dataclasses.
    cuts: the PMT cuts of a run and the classes that follow (state, ``param`` only).
    state: the state of the pages (recent runs, a run with its PMT history, the jobs, alarms,
        the overview, calibrations) as ``param`` classes.
    trends: the trends of analysis variables over runs (state, ``param`` only): the choice, the
        points, and the new points of each refresh.
    editor: the Check editor's state (a check or the PMT cuts, back-tested before saving).
    events: the event display's state (a run's kept events, the one shown, its map's columns).
    api: the read-only JSON API served beside the pages.
    metrics: ``/metrics`` (sessions, page builds, alarms, database) and ``/health`` beside them.
    pmtmap: the PMT map view (cut sliders, counts, the map, the flagged PMTs) and the Aitoff
        figure it shares with the event display.
    pmthistoryview: the PMT page's changes since the previous run, PMT search and masks.
    eventsview: the run page's Events tab (the event display).
    overviewview, alarmsview, calibrationsview, editorview: the other pages.
    trendsview: the Trends page (the choice, one plot per variable, new points streamed).
    views: the page views (recent runs, a run's page with its analyses, the jobs).
    main: the app object with its navigation, for ``panel serve``, ``dqm serve`` and notebooks.
    cli: the ``dqm serve`` command.
"""
