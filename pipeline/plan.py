"""Planning a scan: which comparisons, split into chunks of work."""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import FramediffError
from .tasks import MAX_LOOKBACK, Chunk

__all__ = ["MODES", "plan_chunks", "read_pair_list"]

MODES = ("consecutive", "reference", "pairs", "keyframes", "background")


def _ranges(n: int, chunk_size: int, start: int = 0):
    for s in range(start, n, chunk_size):
        yield s, min(n, s + chunk_size)


def plan_chunks(paths, mode: str, chunk_size: int, *, reference: int | None = None, pairs=None):
    """Yield the chunks of a scan, lazily (an all-pairs plan can be large).

    Parameters
    ----------
    paths : sequence of str
        Every input, by frame index.
    mode : str
        One of :data:`MODES`.
    chunk_size : int
        Frames per task (or frames per block side in ``pairs`` mode).
    reference : int, optional
        Frame index of the reference (``reference`` mode).
    pairs : sequence of (int, int), optional
        Explicit pairs for ``pairs`` mode; all pairs i < j when omitted.
    """
    n = len(paths)
    if mode in ("consecutive", "keyframes", "background"):
        for number, (s, e) in enumerate(_ranges(n, chunk_size)):
            # Consecutive chunks overlap by one frame, plus the look-back for bad frames.
            first = max(0, s - 1 - MAX_LOOKBACK) if mode == "consecutive" else s
            yield Chunk(number, tuple(range(s, e)), {i: paths[i] for i in range(first, e)})
    elif mode == "reference":
        targets = [i for i in range(n) if i != reference]
        for number, s in enumerate(range(0, len(targets), chunk_size)):
            part = targets[s : s + chunk_size]
            yield Chunk(number, tuple(part), {i: paths[i] for i in part})
    elif mode == "pairs":
        if pairs is not None:
            for number, s in enumerate(range(0, len(pairs), chunk_size * chunk_size)):
                part = pairs[s : s + chunk_size * chunk_size]
                triples = tuple((s + k, a, b) for k, (a, b) in enumerate(part))
                needed = {i for _, a, b in triples for i in (a, b)}
                yield Chunk(number, (), {i: paths[i] for i in needed}, triples)
            return
        # Blocks of the upper triangle: memory stays bounded whatever n is.
        number = 0
        blocks = list(_ranges(n, chunk_size))
        for bi, (si, ei) in enumerate(blocks):
            for sj, ej in blocks[bi:]:
                triples = tuple(
                    (_pair_number(i, j, n), i, j) for i in range(si, ei) for j in range(max(sj, i + 1), ej)
                )
                if triples:
                    needed = set(range(si, ei)) | set(range(sj, ej))
                    yield Chunk(number, (), {i: paths[i] for i in needed}, triples, stripe=bi)
                    number += 1
    else:
        raise FramediffError(f"unknown mode {mode!r}; choose from: {', '.join(MODES)}")


def _pair_number(i: int, j: int, n: int) -> int:
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
        with open(path, newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 2:
                    raise FramediffError(f"{path}:{lineno}: expected two columns a,b")
                a, b = row[0].strip(), row[1].strip()
                if lineno == 1 and (a, b) in (("a", "b"), ("path_a", "path_b"), ("index_a", "index_b")):
                    continue
                out.append((_resolve(a, lookup, len(names), path, lineno), _resolve(b, lookup, len(names), path, lineno)))
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
