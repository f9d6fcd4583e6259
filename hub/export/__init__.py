"""Footage export: signed evidence packages from the recorders (docs/design.md, "second batch")."""
