"""Scipion plugin for CryoSTAR (placeholder until the protocols land)."""
