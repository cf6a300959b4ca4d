"""The Panel dashboard: state classes (param), Viewer components and the served app.

It reads the DQM database through ``dqm.db`` and never imports ``pipeline``.
"""
