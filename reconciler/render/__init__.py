"""Views of a Plan, one module per format; each takes data and returns text."""
