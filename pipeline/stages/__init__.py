"""Processing stages: pure functions that run in worker processes (no database access).

Modules:
    reading: raw files in chunks of events, deterministic event sampling, availability checks
        (size, and the adler32 checked while a file is read: ``verified``).
    remote: raw files on an XRootD server (``root://``): stat, the server's checksum, one copy.
    calib: ADC to PE and time offsets applied; the Calib histograms and per-PMT sums of a file.
    fill: compiled histogram filling (counts kept in plain arrays inside the kernels).
    reco: the ``centroid`` vertex and the energy with its non-uniformity correction.
    tlh: the ``tlh`` time-likelihood fit of vertex and time, seeded by the centroid.
    processing: a whole raw file (``FileTask`` in, ``FileResult`` out), chunk-parallel with joblib.
    merge: a run's results as the sum of its done files' (``MergeTask`` in, ``MergeResult`` out).
    laser: gains and time offsets of every PMT from a laser run (``dqm calibrate``).
"""
