"""Errors a user can cause, each carrying what the CLI prints in one line."""

from __future__ import annotations

__all__ = ["FramediffError", "InputError", "ParameterError"]


class FramediffError(Exception):
    """Base of every error caused by input or options rather than by a bug."""


class ParameterError(FramediffError, ValueError):
    """A parameter value that cannot be used.

    The message starts with the parameter's Python name (``tol must be >= 0``);
    the command line shows the matching flag instead (``--tol must be >= 0``).

    Attributes
    ----------
    parameter : str
        The API parameter at fault (``tol``, ``thresholds``, ``chunk_size``...).
    detail : str
        What is wrong with it.
    """

    def __init__(self, parameter: str, detail: str, *, named: bool = True):
        self.parameter = parameter
        self.detail = detail
        # named=False: the detail already says what it is about ("unknown metric 'x'").
        super().__init__(f"{parameter}{'' if detail.startswith(':') else ' '}{detail}" if named else detail)


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
