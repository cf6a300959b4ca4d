"""Processing stages: pure functions that run in worker processes (no database access).

Modules:
    reading: raw files in chunks of events, deterministic event sampling, availability checks.
    calib: ADC to PE and time offsets applied; the Calib histograms and per-PMT sums of a file.
"""
