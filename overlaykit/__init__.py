"""overlaykit: Docker's storage path from first principles."""

__version__ = "0.1.0"
