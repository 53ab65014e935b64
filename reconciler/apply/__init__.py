"""Carrying out a Plan step by step, journaled in the lockfile; training waits and smoke checks."""
