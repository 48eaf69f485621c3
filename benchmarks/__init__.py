"""The benchmarks: ``uv run python -m benchmarks`` runs them all (see run.py)."""
