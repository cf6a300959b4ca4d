"""Where the project lives (kept free of heavy imports: worker processes import it)."""

from __future__ import annotations

from pathlib import Path

#: The directory that holds ``pyproject.toml`` when the package runs from a checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
