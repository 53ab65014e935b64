"""What reconciler keeps on disk: the lockfile, the stat cache, saved plans, outputs, the
apply lock."""
