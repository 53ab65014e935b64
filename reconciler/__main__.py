from __future__ import annotations

from reconciler.cli.main import main

main(prog_name="reconciler")
