"""Errors a user can cause, each carrying what the CLI prints in one line."""

from __future__ import annotations

__all__ = ["FramediffError", "InputError"]


class FramediffError(Exception):
    """Base of every error caused by input or options rather than by a bug."""


class InputError(FramediffError):
    """An input file (or array) that cannot be compared.

    Attributes
    ----------
    path : str
        The file (or ``'<array>'``) at fault.
    kind : str
        Machine-readable reason kind (``missing``, ``truncated``, ``size-mismatch``...).
    reason : str
        Human-readable reason.
    """

    def __init__(self, path, kind: str, reason: str):
        self.path = str(path)
        self.kind = kind
        self.reason = reason
        super().__init__(f"{self.path}: {reason} [{kind}]")
