"""Aeromancy: reproducible ML and data pipelines.

One fingerprint covers the code (a clean git commit), the data (DVC-versioned,
immutable), the runtime (a sealed container image or Nix closure) and the params
of every pipeline stage that runs.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
