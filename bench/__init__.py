"""Benchmarks against same-run baselines and real peers (`bench/README.md` says what each figure
compares). Not installed: run from the repository root, `python -m bench.NAME`."""
