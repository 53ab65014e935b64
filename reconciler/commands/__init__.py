"""One module per command; cli.py gathers them under the `reconciler` group."""
