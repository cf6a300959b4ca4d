"""Automatic checks: the judgement of a run's histograms, PMTs, analysis variables and processing,
as a quality per check, per stage and per run.

Modules:
    quality: the qualities (Good, Warning, Bad, TooFew, Unknown) and how they aggregate.
    shapes: the comparison of a histogram's shape with a reference's (χ² and Kolmogorov–Smirnov on
        binned contents), with the statistics it rests on.
"""
