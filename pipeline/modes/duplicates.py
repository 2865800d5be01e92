"""``duplicates``: near-duplicate images through a signature index, confirmed by pixels.

A scan in this mode runs in three steps:

1. :meth:`Duplicates.before_plan` computes a signature of every new input on the
   scan's scheduler (decode-once at 1/8 scale, :func:`framediff.thumbnails.signatures_of`),
   adds them to a :class:`~framediff.dupindex.DuplicateIndex` and range-searches only the
   new images against everything indexed: candidate pairs, never all pairs. A pair is a
   candidate when its block-mean vectors correlate (``radius``) or its clipped block
   levels are within the scan's pixel tolerance (:func:`~framediff.dupindex.level_radius`
   of ``tol``). On a GPU the
   descriptors are computed with CuPy and FAISS searches on the device when it can
   (``faiss-gpu``); otherwise on the CPU, which the summary says (``search_device``).
2. The plan is the candidate pairs, measured exactly as ``--mode pairs`` measures listed
   pairs (same row schema, options and thresholds), so a *duplicate* is a pair that pairs
   mode would report as not changed. Byte-identical files (same content hash) become
   rows marked in ``note`` without being decoded; unreadable inputs become error rows.
3. :meth:`Duplicates.finish` joins the duplicate pairs (confirmed and byte-identical)
   into groups with a suggested keeper, writes them next to the report
   (``<report>.groups.parquet``/``.csv``) and saves the index (``<report>.dupindex/`` or
   ``index=``) with every duplicate pair found so far, so ``update=True`` later compares
   only new images against the archive. Kept images are every image except the
   non-keeper members of a group.

The index rows are the frame indices of the pair rows: with ``update=True`` images of
earlier runs take part under the path they were indexed with.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from framediff import kernels as K

from ..atomic import atomic_path
from ..dupindex import (
    DEFAULT_RADIUS,
    KEEP_RULES,
    MANIFEST,
    DuplicateIndex,
    confirmation_pairs,
    duplicate_groups,
    level_radius,
    search_device,
)
from ..errors import DecodeError, FramediffError, ParameterError
from ..measure import error_row
from ..plan import Chunk, frame_ranges
from ..report import csv_safe, format_for, sidecar_path
from ..rows import RowBuffer
from ..thumbnails import SignatureParams, Signatures, signatures_of, signatures_of_frames
from ..video import index_video
from ..video_frames import VideoReader
from ..video_inputs import VideoFrameRef
from ..video_outputs import split_frame_name
from .base import Inputs, Mode, device_name
from .pairs import Pairs

__all__ = ["DUPLICATE_PAIRS", "EXACT_NOTE", "Duplicates", "index_folder"]

#: ``note`` of a row whose two files hold the same bytes (not decoded, not measured).
EXACT_NOTE = "byte-identical files: not decoded"
#: File in the index folder with every duplicate pair found so far (index rows a < b).
DUPLICATE_PAIRS = "duplicate-pairs.parquet"
#: The signatures this mode computes (a 32 px thumbnail, 8 x 8 block means and levels, 64-bit DCT hash).
SIGNATURE_PARAMS = SignatureParams()


@dataclass(frozen=True)
class _KnownChunk(Chunk):
    """Rows known without decoding: byte-identical pairs and inputs without a signature.

    ``exact`` holds ``(pair, a, b, height, width)``, ``failed`` ``(pair, frame, kind, reason)``.
    """

    exact: tuple = ()
    failed: tuple = ()


@dataclass
class _Found:
    """What the signature pass and the search found (the inputs' ``context``)."""

    index: DuplicateIndex
    folder: Path | None
    new_rows: np.ndarray
    near: list
    exact: np.ndarray
    failed: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class _SignaturePass(Mode):
    """The task of the signature pass: one chunk's targets -> :class:`Signatures`."""

    name = "duplicates-signatures"

    def __init__(self, params: SignatureParams = SIGNATURE_PARAMS):
        self.params = params

    def run(self, chunk, spec, xp, shared=None):
        paths = [chunk.paths[i] for i in chunk.targets]
        # Runs of image files and of video frames, each signed its own way, kept in order.
        parts = []
        for is_frame, run in itertools.groupby(paths, key=lambda p: isinstance(p, VideoFrameRef)):
            run = list(run)
            if is_frame:
                parts.append(self._frames(run, chunk, spec, xp))
            else:
                parts.append(signatures_of(run, params=self.params, max_pixels=spec.options.max_pixels, xp=xp))
        return Signatures.concat(parts) if len(parts) > 1 else parts[0]

    def _frames(self, refs, chunk, spec, xp) -> Signatures:
        """Signatures of video frames: decoded in order by one reader, gray."""
        reader = VideoReader(spec.options.replace(color=False, gray="luma"), spec.file_timeout, chunk.paths)
        frames = []
        try:
            for ref in refs:
                try:
                    frames.append((reader.read(ref), ref.index.height, ref.index.width))
                except DecodeError as exc:
                    frames.append(exc)
        finally:
            reader.close()
        return signatures_of_frames([index_key(r) for r in refs], frames, params=self.params, xp=xp)


def index_folder(request) -> Path | None:
    """Where the index of a request lives: ``index=``, else ``<report>.dupindex`` (local reports)."""
    if request.index is not None:
        return Path(request.index)
    if request.local_output:
        return Path(os.fspath(request.output).rstrip("/") + ".dupindex")
    return None


class Duplicates(Pairs):
    """Candidate pairs from the signature index, measured as pairs mode measures pairs."""

    name = "duplicates"
    uses_pair_list = False
    uses_index = True
    keeps_frames = True

    def check_request(self, request) -> None:
        rule = request.keep_rule
        if rule is not None and rule not in KEEP_RULES:
            raise ParameterError("keep_rule", f"must be one of {', '.join(KEEP_RULES)}, got {rule!r}")
        radius = request.radius
        if radius is not None and (
            isinstance(radius, bool)
            or not isinstance(radius, numbers.Real)
            or not (math.isfinite(radius) and radius > 0)
        ):
            raise ParameterError("radius", f"must be a positive number, got {radius!r}")
        if request.update and index_folder(request) is None:
            raise ParameterError("update", ": needs index= (or a local output next to which the index lives)")

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs  # the candidates are unknown before the search: progress counts images

    # -- before the plan: signatures and candidates ---------------------------------

    def before_plan(self, inputs: Inputs, spec, request, run) -> Inputs:
        folder = index_folder(request)
        index = self._open_index(folder, request)
        paths = [index_key(p) for p in inputs.paths]
        indexed = set(index.signatures.paths)
        new = [k for k, p in enumerate(paths) if p not in indexed]
        started = time.perf_counter()
        parts = []
        # Image files go to the signature pass by their absolute path, video frames as themselves.
        given = [p if isinstance(p, VideoFrameRef) else key for p, key in zip(inputs.paths, paths)]
        chunks = (
            Chunk(number, tuple(new[s:e]), {k: given[k] for k in new[s:e]})
            for number, (s, e) in enumerate(frame_ranges(len(new), request.chunk_size))
        )
        run(chunks, _replace_mode(spec, _SignaturePass()), lambda chunk, part, state: parts.append(part))
        signed = Signatures.concat(parts) if parts else Signatures.empty(index.params)
        signature_seconds = time.perf_counter() - started
        started = time.perf_counter()
        radius = DEFAULT_RADIUS if request.radius is None else float(request.radius)
        device, note = search_device(_scan_device(spec))
        # The level radius follows the pixel tolerance that will confirm the pairs.
        levels = level_radius(spec.options.tol, index.params.dim)
        rows, near, exact = index.update(signed, radius=radius, level_radius=levels, device=device)
        s = index.signatures
        # Pairs of the same bytes are rows already (below): never decoded to confirm them.
        same = (s.content[near[:, 0]] == s.content[near[:, 1]]) & (s.file_size[near[:, 0]] >= 0) if len(near) else []
        candidates = confirmation_pairs(near[~np.asarray(same, bool)] if len(near) else near)
        search_seconds = time.perf_counter() - started
        failed = [(int(r), str(s.status[r]), s.error[r]) for r in rows if s.status[r] != "ok"]
        names = _names(s.paths, paths, inputs.names)
        found = _Found(
            index, folder, rows, candidates, exact, failed,
            stats={
                "signature_params": dict(dataclasses.asdict(index.params), radius=radius, level_radius=levels),
                "images_signed": int(len(signed)),
                "images_decoded_for_signatures": int(signed.decoded.sum()),
                "images_indexed": int(len(index)),
                "index_kind": index.kind,
                "candidate_pairs": len(candidates),
                "byte_identical_pairs": int(len(exact)),
                "signature_seconds": round(signature_seconds, 3),
                "search_seconds": round(search_seconds, 3),
                "search_device": device,
                **({"search_note": note} if note else {}),
            },
        )  # fmt: skip
        return Inputs(tuple(names), _readable(s.paths, paths, given), pairs=candidates, context=found)

    @staticmethod
    def _open_index(folder: Path | None, request) -> DuplicateIndex:
        saved = folder is not None and (folder / MANIFEST).exists()
        if request.update:
            return DuplicateIndex.load(folder, params=SIGNATURE_PARAMS) if saved else DuplicateIndex(SIGNATURE_PARAMS)
        if saved and not request.overwrite:
            raise FramediffError(
                f"{folder}: a duplicate index is already there; add to it with update=True, "
                "replace it with overwrite=True, or choose another index folder"
            )
        return DuplicateIndex(SIGNATURE_PARAMS)

    # -- the plan: candidates, then rows known without decoding -----------------------

    def plan(self, inputs: Inputs, chunk_size: int):
        found = inputs.context
        number = 0  # the next chunk's number
        for chunk in Pairs.plan(self, inputs, chunk_size):
            number = chunk.number + 1
            yield chunk
        s = found.index.signatures
        first = len(found.near)
        exact = tuple(
            (first + k, int(a), int(b), int(s.height[a]), int(s.width[a])) for k, (a, b) in enumerate(found.exact)
        )
        first += len(exact)
        failed = tuple((first + k, frame, kind, reason) for k, (frame, kind, reason) in enumerate(found.failed))
        per_chunk = chunk_size * chunk_size
        for s0 in range(0, max(len(exact), len(failed)), per_chunk):
            yield _KnownChunk(number, exact=exact[s0 : s0 + per_chunk], failed=failed[s0 : s0 + per_chunk])
            number += 1

    def run(self, chunk, spec, xp, shared=None):
        if not isinstance(chunk, _KnownChunk):
            return Pairs.run(self, chunk, spec, xp, shared)
        rows = RowBuffer(spec.schema)
        for pair, a, b, height, width in chunk.exact:
            rows.add(pair=pair, index_a=a, index_b=b, path_a=spec.names[a], path_b=spec.names[b], height=height,
                     width=width, changed=False, status="ok", note=EXACT_NOTE)  # fmt: skip
        for pair, frame, kind, reason in chunk.failed:
            error_row(rows, spec, pair, None, frame, kind, reason)
        return rows.table()

    # -- after the report: groups, kept images, the saved index -------------------------

    def finish(self, inputs: Inputs, report, tables, request):
        found = inputs.context
        index, folder = found.index, found.folder
        pairs = _duplicate_rows(report, tables, request)
        if request.update and folder is not None and (folder / DUPLICATE_PAIRS).exists():
            pairs = np.concatenate([_read_pairs(folder / DUPLICATE_PAIRS, len(index)), pairs])
        pairs = np.unique(pairs.reshape(-1, 2), axis=0)
        rule = request.keep_rule or "resolution"
        named = _with_paths(index.signatures, list(inputs.names))
        groups = duplicate_groups(named, pairs, keep_rule=rule)
        groups = groups.append_column("keep_rule", pa.array([rule] * groups.num_rows, pa.string()))
        extra = dict(found.stats, keep_rule=rule, duplicate_pairs=int(len(pairs)),
                     groups=len(set(groups.column("group").to_pylist())))  # fmt: skip
        if report is not None:
            fmt = format_for(report, request.format)
            path = sidecar_path(report, f".groups.{fmt}")
            _write_table(groups, path, fmt)
            extra["groups_report"] = str(path)
        if folder is not None:
            _save(index, folder, pairs, fresh=not request.update)
            extra["index"] = str(folder)
        position = {name: i for i, name in enumerate(inputs.names)}
        keepers = groups.column("keeper").to_pylist()
        dropped = {position[p] for p, keeper in zip(groups.column("path").to_pylist(), keepers) if not keeper}
        kept = [i for i in range(len(inputs.names)) if i not in dropped]
        extra["kept"] = len(kept)
        return kept, extra


def _scan_device(spec) -> str:
    """The device the scan's tasks resolved (``'cpu'`` or ``'gpu'``)."""
    return device_name(K.resolve_device(spec.options.device))


def _replace_mode(spec, mode):
    return dataclasses.replace(spec, mode=mode)


def index_key(path) -> str:
    """What an input is called in the index: an absolute path (so a later update finds
    it from anywhere), ``/abs/clip.mp4#frame=12`` for a video frame, URLs as they are."""
    text = str(path)
    return text if "://" in text else os.path.abspath(text)


def _readable(keys, scanned_keys, scanned):
    """What the pixel confirmation reads for each index row: this scan's input (a video
    frame as a reference into its video), else the indexed path; a frame indexed by an
    earlier run is found again in its video."""
    by_key = dict(zip(scanned_keys, scanned))
    videos = {}
    out = []
    for key in keys:
        if key in by_key:
            out.append(by_key[key])
        elif (frame := split_frame_name(key)) is not None:
            out.append(_frame_ref(frame, videos))
        else:
            out.append(key)
    return tuple(out)


def _frame_ref(frame, videos: dict):
    """A reference to frame ``n`` of a video indexed earlier (the video indexed once)."""
    path, n = frame
    if path not in videos:
        videos[path] = index_video(path)
    index = videos[path]
    if index.error is not None:
        return VideoFrameRef(path, None, index, index.error)
    return VideoFrameRef(path, n, index)


def _names(indexed_paths, scanned_paths, scanned_names) -> list:
    """Report name of each index row: the scan's name, else the path it was indexed with."""
    by_path = dict(zip(scanned_paths, scanned_names))
    return [by_path.get(p, p) for p in indexed_paths]


def _with_paths(signatures: Signatures, paths: list) -> Signatures:
    return dataclasses.replace(signatures, paths=paths)


def _duplicate_rows(report, tables, request) -> np.ndarray:
    """``(index_a, index_b)`` of this run's rows that say *duplicate*: ok and not changed."""
    if tables:
        table = pa.concat_tables(tables)
    elif report is not None:
        import pyarrow.dataset as ds

        table = ds.dataset(report, format=format_for(report, request.format)).to_table(
            columns=["index_a", "index_b", "status", "changed"]
        )
    else:
        return np.zeros((0, 2), np.int64)
    import pyarrow.compute as pc

    duplicate = pc.and_(pc.equal(table.column("status"), "ok"), pc.equal(table.column("changed"), False))
    rows = table.filter(pc.fill_null(duplicate, False))
    a = rows.column("index_a").to_numpy(zero_copy_only=False).astype(np.int64)
    b = rows.column("index_b").to_numpy(zero_copy_only=False).astype(np.int64)
    return np.sort(np.stack([a, b], axis=1), axis=1).reshape(-1, 2)


def _read_pairs(path: Path, n: int) -> np.ndarray:
    """Saved duplicate pairs; pairs of rows a killed save never indexed are left out."""
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path)
        pairs = np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1).astype(np.int64)
    except (OSError, KeyError, pa.ArrowInvalid) as exc:
        raise FramediffError(f"{path}: cannot read the duplicate pairs of the index ({exc})") from None
    return pairs[(pairs < n).all(axis=1)]


def _save(index: DuplicateIndex, folder: Path, pairs: np.ndarray, *, fresh: bool) -> None:
    """The pairs first, then the index: a save killed between them leaves pairs whose
    rows the saved index lacks, which :func:`_read_pairs` leaves out."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    if fresh and (folder / MANIFEST).exists():  # overwrite=True: an earlier index goes
        for entry in folder.iterdir():
            if entry.name == MANIFEST or _index_file(entry.name):
                entry.unlink()
    table = pa.table({"a": pa.array(pairs[:, 0], pa.int64()), "b": pa.array(pairs[:, 1], pa.int64())})
    with atomic_path(folder / DUPLICATE_PAIRS) as tmp:
        pq.write_table(table, tmp)
    index.save(folder)


def _index_file(name: str) -> bool:
    stem, _, ext = name.partition(".")
    kind, _, number = stem.partition("-")
    return number.isdigit() and (kind, ext) in (("index", "faiss"), ("signatures", "parquet"))


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(csv_safe(table), tmp)
