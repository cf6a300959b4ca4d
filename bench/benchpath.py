"""Imported first by the benchmarks that use the pipeline package: Python puts a script's folder
first on sys.path, where ``bench/pipeline.py`` would hide the package; this takes the folder out."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
