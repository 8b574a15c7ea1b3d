"""Synesthesia: a real-time speech-to-visual engine.

The Rust kernels are importable on their own as :mod:`synesthesia.kernels`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
