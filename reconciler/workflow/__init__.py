"""The library calls behind the commands: load everything once, read remote state, plan, apply."""
