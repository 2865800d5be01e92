"""Planning a scan: the unit of work (:class:`Chunk`) and the helpers modes plan with."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from .discover import read_text_file
from .errors import FramediffError

__all__ = ["Chunk", "frame_ranges", "pair_number", "read_pair_list"]


@dataclass(frozen=True)
class Chunk:
    """One task's share of the plan.

    Attributes
    ----------
    number : int
        Position of this chunk's rows in the report.
    targets : tuple of int
        Frames compared as ``b`` (consecutive, reference, keyframes, background).
    paths : dict int -> str
        Paths of every frame this task may decode (targets, overlap, look-back).
    pairs : tuple of (pair, index_a, index_b)
        Explicit comparisons (pairs mode).
    stripe : int or None
        All-pairs mode: the block row; a report is written stripe by stripe, sorted,
        so its row order does not depend on the block size.
    skip : frozenset of int
        Frames that crashed a worker process: reported as ``worker-crash``.
    """

    number: int
    targets: tuple = ()
    paths: dict = field(default_factory=dict)
    pairs: tuple = ()
    stripe: int | None = None
    skip: frozenset = frozenset()


def frame_ranges(n: int, chunk_size: int, start: int = 0):
    """``(start, end)`` of consecutive runs of ``chunk_size`` frame indices below ``n``."""
    for s in range(start, n, chunk_size):
        yield s, min(n, s + chunk_size)


def pair_number(i: int, j: int, n: int) -> int:
    """Row-major position of pair (i, j), i < j, among all pairs of n frames."""
    return i * n - i * (i + 1) // 2 + (j - i - 1)


def read_pair_list(path, names) -> list:
    """Pairs from a CSV with two columns (paths relative to the input root, or indices).

    Raises
    ------
    FramediffError
        The file cannot be read or names an image that is not among the inputs.
    """
    lookup = {name: i for i, name in enumerate(names)}
    out = []
    try:
        with io.StringIO(read_text_file(path, "pair list"), newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 2:
                    raise FramediffError(f"{path}:{lineno}: expected two columns a,b")
                a, b = row[0].strip(), row[1].strip()
                if lineno == 1 and (a, b) in (("a", "b"), ("path_a", "path_b"), ("index_a", "index_b")):
                    continue
                out.append(
                    (_resolve(a, lookup, len(names), path, lineno), _resolve(b, lookup, len(names), path, lineno))
                )
    except OSError as exc:
        raise FramediffError(f"{path}: cannot read the pair list ({exc.strerror})") from None
    return out


def _resolve(token, lookup, n, path, lineno):
    if token in lookup:
        return lookup[token]
    if token.isdigit() and int(token) < n:
        return int(token)
    posix = Path(token).as_posix()
    if posix in lookup:
        return lookup[posix]
    raise FramediffError(f"{path}:{lineno}: {token!r} is not one of the scanned images")
