"""``pairs``: all pairs i < j in blocks of the upper triangle, or the listed pairs."""

from __future__ import annotations

from ..measure import error_row, measure_planned
from ..plan import Chunk, pair_number
from ..rows import RowBuffer
from .base import Inputs, Mode

__all__ = ["Pairs"]


class Pairs(Mode):
    name = "pairs"
    uses_pair_list = True
    rows_follow_frames = False

    def plan(self, inputs: Inputs, chunk_size: int):
        paths, n = inputs.paths, len(inputs.paths)
        if inputs.pairs is not None:
            # chunk_size squared pairs per task: as many as a block of all pairs.
            for number, s in enumerate(range(0, len(inputs.pairs), chunk_size * chunk_size)):
                part = inputs.pairs[s : s + chunk_size * chunk_size]
                triples = tuple((s + k, a, b) for k, (a, b) in enumerate(part))
                needed = {i for _, a, b in triples for i in (a, b)}
                yield Chunk(number, (), {i: paths[i] for i in needed}, triples)
            return
        # Blocks of the upper triangle: memory stays bounded whatever n is.
        number = 0
        blocks = list(inputs.ranges(chunk_size))
        for bi, (si, ei) in enumerate(blocks):
            for sj, ej in blocks[bi:]:
                triples = tuple((pair_number(i, j, n), i, j) for i in range(si, ei) for j in range(max(sj, i + 1), ej))
                if triples:
                    needed = set(range(si, ei)) | set(range(sj, ej))
                    yield Chunk(number, (), {i: paths[i] for i in needed}, triples, stripe=bi)
                    number += 1

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs * (n_inputs - 1) // 2

    def run(self, chunk, spec, xp, shared=None):
        frames = spec.frames(xp, capacity=len(chunk.paths), reuse=True, skip=chunk.skip, wanted=chunk.paths)
        rows = RowBuffer(spec.schema)
        planned = []
        for i in sorted(chunk.paths):  # in order: a video's frames come from one decode
            frames.load(i, chunk.paths[i])
        for pair, a, b in chunk.pairs:
            ok_a = frames.load(a, chunk.paths[a])
            ok_b = frames.load(b, chunk.paths[b])
            if not ok_b:
                error_row(rows, spec, pair, a, b, frames.errors[b].kind, frames.errors[b].reason)
            elif not ok_a:
                err = frames.errors[a]
                error_row(rows, spec, pair, a, b, err.kind, f"{spec.names[a]}: {err.reason}")
            else:
                planned.append((pair, a, b))
        frames.prepare()
        measure_planned(frames, planned, spec, rows, {})
        return rows.table()
