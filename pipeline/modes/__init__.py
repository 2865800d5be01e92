"""Scan modes: what a scan compares. One module per mode, one registry line each.

A new mode is a :class:`~framediff.modes.base.Mode` subclass in its own module plus a
line in :data:`MODES`; planning, scheduling, the row schema, resume and the writer
ask the mode object and never test its name.
"""

from __future__ import annotations

from ..errors import ParameterError
from .background import Background
from .base import Inputs, Mode, Route
from .consecutive import Consecutive
from .duplicates import Duplicates
from .keyframes import Keyframes
from .pairs import Pairs
from .reference import Reference

__all__ = ["MODES", "Inputs", "Mode", "Route", "get_mode"]

#: Every mode by name, in the order the command line lists them.
MODES: dict[str, Mode] = {
    mode.name: mode for mode in (Consecutive(), Reference(), Pairs(), Keyframes(), Background(), Duplicates())
}


def get_mode(mode) -> Mode:
    """The mode object for a name (a mode object is returned as is).

    Raises
    ------
    ParameterError
        An unknown mode name.
    """
    if isinstance(mode, Mode):
        return mode
    try:
        return MODES[str(mode)]
    except KeyError:
        raise ParameterError("mode", f": unknown mode {mode!r}; choose from: {', '.join(MODES)}") from None
