"""What the chain modes share: decoding a chunk ahead of its ordered link."""

from __future__ import annotations

from framediff import kernels as K

from ..frames import Frames
from ..plan import Chunk
from .base import Inputs

__all__ = ["decode_chunk", "plan_frames"]


def plan_frames(inputs: Inputs, chunk_size: int):
    """Chunks of consecutive frames, each with only its own paths (a video's end at keyframes)."""
    for number, (s, e) in enumerate(inputs.ranges(chunk_size)):
        yield Chunk(number, tuple(range(s, e)), {i: inputs.paths[i] for i in range(s, e)})


def decode_chunk(chunk: Chunk, spec, device: str, *, raw_only: bool = False) -> Frames:
    """Decode (and unless ``raw_only``, prepare) a chain chunk ahead of the chain."""
    # No buffer reuse: these frames outlive the task (the chain consumes them later).
    frames = spec.frames(K.resolve_device(device), capacity=len(chunk.targets), skip=chunk.skip, wanted=chunk.paths)
    for i in chunk.targets:
        frames.load(i, chunk.paths[i])
    frames.prepare(raw_only=raw_only)
    return frames
