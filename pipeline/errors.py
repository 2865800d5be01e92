"""Errors a user can cause, each carrying what the CLI prints in one line."""

from __future__ import annotations

__all__ = ["DecodeError", "FramediffError", "InputError", "ParameterError"]


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


class DecodeError(Exception):
    """A file could not be turned into an image.

    Attributes
    ----------
    kind : str
        One of ``missing``, ``permission``, ``unreadable``, ``not-a-file``, ``empty``,
        ``truncated``, ``corrupt``, ``not-an-image``, ``bomb``, ``unsupported``,
        ``non-finite`` (float pixels that are NaN or infinite).
    reason : str
        A short human-readable explanation.
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason

    def __reduce__(self):
        # Decoded chunks carry their errors between processes (keyframes, background).
        return type(self), (self.kind, self.reason)
