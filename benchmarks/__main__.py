"""``uv run python -m benchmarks [--quick] [--only NAME]``: the same as benchmarks/run.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import main  # the runner lives beside this file

raise SystemExit(main())
