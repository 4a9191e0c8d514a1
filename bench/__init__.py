"""Aeromancy's benchmark harness (see README.md); a package so tests can import it."""
