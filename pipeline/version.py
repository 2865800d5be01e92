"""framediff's version, in one place (packaging reads it; reports record it)."""

__version__ = "0.1.0"
