"""``python -m dqm.cli``, the same as ``dqm``."""

from __future__ import annotations

from dqm.cli import main

main()
