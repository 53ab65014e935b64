"""One seam per provider: base.py draws it, registry.py lists who stands behind it."""
