"""IndMLOps-Lab: conformance and chaos checks for an industrial MLOps reference architecture."""

__version__ = "0.1.0"
