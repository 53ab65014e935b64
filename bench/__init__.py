"""Benchmarks: run them with `.venv/bin/python -m bench` (see bench/__main__.py)."""
