"""What importing some modules loads, seen from a fresh interpreter (for the layering tests)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def modules_loaded(imports: Iterable[str], watched: Iterable[str]) -> list[str]:
    """Which of the ``watched`` top-level modules a fresh Python loads when it imports
    ``imports``, sorted."""
    code = (
        f"import sys; import {', '.join(imports)}; "
        f"print(' '.join(sorted(set({sorted(watched)!r}) & set(sys.modules))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.split()
