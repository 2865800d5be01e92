"""A persistent near-duplicate index: signatures, a FAISS index, candidate pairs.

Every image's signature (:mod:`framediff.thumbnails`) is kept, and two vectors of each
readable one are held in two FAISS indexes: the unit block-mean vector (correlation:
blind to brightness and contrast) and the clipped block levels (absolute: near for
pictures equal but for a few per cent of pixels, which correlation misses). Candidates
are the pairs either range search finds for each *new* image against everything
indexed so far, never an n x n matrix: memory is linear in n. Every candidate's
distance is then recomputed exactly in float64 (FAISS's own distances differ in the
last bits from one query batch to another), so the pairs found do not depend on how
the images were split into updates.

Below :data:`IVF_FROM` vectors the index is exact (``IndexFlatL2``); when it grows past
that each is rebuilt once as an inverted file (``IndexIVFFlat``, ``4 sqrt(n)`` lists,
``nprobe`` probed per query), which scans a few thousand vectors per query instead of n.

On a GPU (``device='gpu'`` and a FAISS built with GPU support, ``faiss-gpu``) the search
runs on a copy of the index on the device. FAISS's GPU indexes have no range search, so
it is made of k-NN searches (:func:`range_search_by_knn`): each query asks for its
nearest neighbours, and asks again with twice as many while its farthest one is still
inside the radius. The exact test above then gives the pairs of the CPU search.

Byte-identical files are paired by content hash alone (:meth:`DuplicateIndex.exact_pairs`).

On disk (:meth:`DuplicateIndex.save`), a folder holds one Parquet part of signatures per
update, the two index files of the current generation and ``manifest.json`` with the
parameters and each file's SHA-256; the manifest is replaced last, so a run killed
mid-save leaves the previous generation intact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .errors import FramediffError
from .manifest import clean_stale_temporaries, file_sha256
from .thumbnails import SignatureParams, Signatures

__all__ = [
    "DEFAULT_LEVEL_RADIUS",
    "DEFAULT_RADIUS",
    "GPU_MAX_K",
    "IVF_FROM",
    "KEEP_RULES",
    "KNN_START",
    "DuplicateIndex",
    "confirmation_pairs",
    "duplicate_groups",
    "gpu_faiss_available",
    "range_search_by_knn",
    "search_device",
]

#: Squared distance of unit block-mean vectors, ``2 - 2 r``: correlation r >= 0.85.
DEFAULT_RADIUS = 0.30
#: Squared distance of block-level vectors (64 blocks, data range 1): 0.1 is a
#: root-mean-square difference of 0.04 per block, the default tolerance of 10 grey
#: levels of 255 (:func:`level_radius` scales it with a larger tolerance).
DEFAULT_LEVEL_RADIUS = 0.10
#: Indexed vectors from which the exact flat index becomes an inverted file.
IVF_FROM = 50_000
#: Inverted lists probed per query.
DEFAULT_NPROBE = 16
#: Suggested-keeper rules of :func:`duplicate_groups`.
KEEP_RULES = ("resolution", "file-size", "name")

#: Neighbours a k-NN range search (:func:`range_search_by_knn`) asks for first.
KNN_START = 32
#: The largest k a FAISS GPU index selects (1024 in older builds, 2048 in newer ones):
#: query rows with more neighbours inside the radius are range-searched on the CPU index.
GPU_MAX_K = 1024

MANIFEST = "manifest.json"
_VERSION = 2
#: The vector column each FAISS index holds, and the manifest entry of its file.
_CHANNELS = (("vectors", "index"), ("levels", "levels"))
_QUERY_BATCH = 8192  # range results of one batch stay small


def _faiss():
    try:
        import faiss
    except ImportError:
        raise FramediffError("near-duplicate search needs FAISS: pip install faiss-cpu") from None
    return faiss


def level_radius(tol: float, dim: int = 64) -> float:
    """The block-level search radius for the scan's pixel tolerance ``tol``.

    Blocks of two images whose pixels all differ by at most ``tol`` differ by at most
    ``tol``: a squared distance of up to ``dim * (tol / 255) ** 2``. Never below
    :data:`DEFAULT_LEVEL_RADIUS` (the default tolerance's), so a zero tolerance still
    finds re-encoded copies.

    Parameters
    ----------
    tol : float
        The L0 tolerance (``--tol``), in grey levels of 255.
    dim : int
        Length of the level vector.

    Returns
    -------
    float

    Examples
    --------
    >>> level_radius(10.0)
    0.1
    >>> round(level_radius(20.0), 3)
    0.394
    """
    return max(DEFAULT_LEVEL_RADIUS, dim * (float(tol) / 255.0) ** 2)


def gpu_faiss_available() -> bool:
    """True when FAISS was built with GPU support (``faiss-gpu``) and sees a GPU."""
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def search_device(device: str) -> tuple[str, str | None]:
    """Where a search asked to run on ``device`` runs, and why not on the GPU it was asked for.

    Parameters
    ----------
    device : {'cpu', 'gpu'}
        The scan's resolved device.

    Returns
    -------
    device : {'cpu', 'gpu'}
        ``'gpu'`` only when asked and :func:`gpu_faiss_available`.
    note : str or None
        Why a GPU run searches on the CPU; None otherwise.

    Raises
    ------
    ValueError
        ``device`` is neither ``'cpu'`` nor ``'gpu'``.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"unknown device {device!r}; expected cpu or gpu")
    if device == "cpu" or gpu_faiss_available():
        return device, None
    return "cpu", "FAISS has no GPU support here (pip install faiss-gpu): the candidate search ran on the CPU"


@functools.lru_cache(maxsize=1)
def _gpu_resources():
    """FAISS's scratch memory and streams on the GPU, made once per process."""
    return _faiss().StandardGpuResources()


def _on_gpu(index):
    """A copy of ``index`` on GPU 0 (an ID map keeps its ids on the host around it)."""
    return _faiss().index_cpu_to_gpu(_gpu_resources(), 0, index)


def range_search_by_knn(index, queries, radius: float, *, k: int = KNN_START, max_k: int | None = None,
                        fallback=None):  # fmt: skip
    """A range search made of k-NN searches, for indexes without one (FAISS on a GPU).

    Each query row asks for its ``k`` nearest neighbours and keeps those closer than
    ``radius``. A row whose ``k``-th neighbour is still inside may have more, so it asks
    again with twice the ``k``, until its farthest neighbour lies outside or ``k`` covers
    the whole index; past ``max_k``, ``fallback`` range-searches the rows left.

    Parameters
    ----------
    index : faiss.Index
        Any index with ``search``, on the CPU or a GPU.
    queries : array of float32, shape (N, D)
    radius : float
        As in FAISS's ``range_search``: neighbours at a distance strictly below it.
    k : int
        Neighbours asked for first.
    max_k : int, optional
        The largest ``k`` the index accepts (a GPU index: :data:`GPU_MAX_K`); none when
        omitted.
    fallback : callable, optional
        ``fallback(queries, radius) -> (lims, distances, ids)``: an exact range search
        (the CPU index's ``range_search``) for the rows still full at ``max_k``.

    Returns
    -------
    lims : numpy.ndarray of int64, shape (N + 1,)
    distances : numpy.ndarray of float32
    ids : numpy.ndarray of int64
        As ``range_search`` returns them: row ``i``'s neighbours are
        ``ids[lims[i]:lims[i + 1]]``, the same set (nearest first here) up to FAISS's
        rounding of distances at the radius.

    Raises
    ------
    ValueError
        ``k`` or ``max_k`` is not positive, or ``max_k`` is given without ``fallback``.

    Examples
    --------
    >>> import faiss, numpy as np
    >>> index = faiss.IndexFlatL2(1)
    >>> index.add(np.array([[0.0], [0.1], [0.2], [5.0]], np.float32))
    >>> lims, _, ids = range_search_by_knn(index, np.array([[0.0]], np.float32), 0.5, k=1)
    >>> sorted(ids.tolist())
    [0, 1, 2]
    """
    if k < 1 or (max_k is not None and max_k < 1):
        raise ValueError(f"k and max_k must be positive, got k={k!r}, max_k={max_k!r}")
    if max_k is not None and fallback is None:
        raise ValueError("max_k needs a fallback range search for the rows with more neighbours")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, total = len(queries), int(index.ntotal)
    limit = total if max_k is None else min(total, max_k)
    k = min(k, limit)
    parts = []  # (query row of each hit, distance, id), in rounds
    todo = np.arange(n) if total else np.zeros(0, np.int64)
    while len(todo):
        dist, ids = index.search(queries[todo], k)
        inside = (dist < radius) & (ids >= 0)
        # Full: the k-th neighbour is inside, so the next one may be too (unless k is all).
        full = inside[:, -1] if k < total else np.zeros(len(todo), bool)
        done, hit = ~full, inside[~full]
        parts.append((np.repeat(todo[done], hit.sum(axis=1)), dist[done][hit], ids[done][hit]))
        todo = todo[full]
        if len(todo) and k >= limit:  # full at the largest k the index takes
            lims, dist, ids = fallback(queries[todo], radius)
            parts.append((np.repeat(todo, np.diff(lims).astype(np.int64)), dist, ids))
            break
        k = min(2 * k, limit)
    if not parts:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    rows, dist, ids = (np.concatenate(column) for column in zip(*parts))
    order = np.argsort(rows, kind="stable")  # by query row, each row's hits in their order
    lims = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=lims[1:])
    return lims, dist[order].astype(np.float32), ids[order].astype(np.int64)


class DuplicateIndex:
    """Signatures of every image seen so far and a nearest-neighbour index over them.

    Parameters
    ----------
    params : SignatureParams or None
        What the signatures mean; an index only accepts signatures made with the same. Default: ``SignatureParams()``.
    nprobe : int
        Inverted lists searched per query once the index is an inverted file.
    ivf_from : int
        Size from which the exact index is rebuilt as an inverted file.

    Attributes
    ----------
    signatures : Signatures
        Row ``k`` is image ``k`` (in the order added).
    """

    def __init__(self, params: SignatureParams | None = None, *, nprobe: int = DEFAULT_NPROBE,
                 ivf_from: int = IVF_FROM):  # fmt: skip
        self.params = SignatureParams() if params is None else params
        self.nprobe = int(nprobe)
        self.ivf_from = int(ivf_from)
        self.signatures = Signatures.empty(self.params)
        # One index per vector column (_CHANNELS), the same rows in each.
        self._indexes = {col: _faiss().IndexIDMap2(_faiss().IndexFlatL2(self.params.dim)) for col, _ in _CHANNELS}
        self._by_content = {}  # digest -> first row with it
        self._parts = []  # row counts of the Parquet parts already saved
        self._generation = 0

    def __len__(self) -> int:
        return len(self.signatures)

    @property
    def kind(self) -> str:
        """``'flat'`` (exact) or ``'ivf'``."""
        return "ivf" if isinstance(self._inner(), _faiss().IndexIVF) else "flat"

    def _inner(self):
        faiss = _faiss()
        index = self._indexes["vectors"]
        return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index

    def known(self, digest: bytes):
        """``(height, width, vector, levels, code)`` of an indexed file with these bytes, or None.

        Passed to :func:`framediff.thumbnails.signatures_of` as ``known``, so a
        byte-identical copy of an indexed image is not decoded again.
        """
        row = self._by_content.get(digest)
        if row is None or self.signatures.status[row] != "ok":
            return None
        s = self.signatures
        return s.height[row], s.width[row], s.vectors[row], s.levels[row], s.codes[row]

    def add(self, signatures: Signatures) -> np.ndarray:
        """Append a batch of signatures; return their row numbers.

        Raises
        ------
        ValueError
            The signatures' vectors do not have this index's dimension.
        """
        for col, _ in _CHANNELS:
            if getattr(signatures, col).shape[1] != self.params.dim:
                raise ValueError(
                    f"signatures have {getattr(signatures, col).shape[1]} dimensions, the index {self.params.dim}"
                )
        start = len(self.signatures)
        rows = np.arange(start, start + len(signatures), dtype=np.int64)
        self.signatures = Signatures.concat([self.signatures, signatures]) if start else signatures
        for row, digest, size in zip(rows, signatures.content, signatures.file_size):
            if size >= 0:
                self._by_content.setdefault(digest.tobytes(), int(row))
        ok = signatures.ok
        if self.kind == "flat" and start + len(signatures) >= self.ivf_from:
            self._rebuild_ivf()
        else:
            for col, index in self._indexes.items():
                index.add_with_ids(np.ascontiguousarray(getattr(signatures, col)[ok]), rows[ok])
        return rows

    def _rebuild_ivf(self) -> None:
        """One inverted file per column over every readable row, trained on a sample."""
        faiss = _faiss()
        s = self.signatures
        ok_rows = np.flatnonzero(s.ok)
        nlist = max(1, int(4 * math.sqrt(len(ok_rows))))
        rng = np.random.default_rng(0)  # the same sample every time: a reproducible index
        sample = np.sort(rng.choice(ok_rows, size=min(len(ok_rows), 64 * nlist), replace=False))
        for col, _ in _CHANNELS:
            vectors = getattr(s, col)
            ivf = faiss.index_factory(self.params.dim, f"IVF{nlist},Flat")  # owns its quantizer
            ivf.train(np.ascontiguousarray(vectors[sample]))
            ivf.nprobe = self.nprobe
            ivf.add_with_ids(np.ascontiguousarray(vectors[ok_rows]), ok_rows.astype(np.int64))
            self._indexes[col] = ivf

    def search(self, rows=None, *, radius: float = DEFAULT_RADIUS, level_radius: float = DEFAULT_LEVEL_RADIUS,
               device: str = "cpu") -> np.ndarray:  # fmt: skip
        """Candidate pairs of ``rows`` against every indexed image: near in either vector.

        Parameters
        ----------
        rows : array of int, optional
            The query rows (the ones just added); all rows when omitted.
        radius : float
            Squared Euclidean distance of block-mean vectors (``2 - 2 r``).
        level_radius : float
            Squared Euclidean distance of block-level vectors (see :func:`level_radius`).
        device : {'cpu', 'gpu'}
            Where FAISS searches: ``'gpu'`` on copies of the indexes on the GPU, by
            :func:`range_search_by_knn`; the pairs are the same.

        Returns
        -------
        numpy.ndarray of int64, shape (P, 2)
            Unique pairs ``(a, b)``, ``a < b``, sorted; the exact squared distance of
            their block-mean vectors is at most ``radius`` or that of their block levels
            at most ``level_radius``. Rows without a readable image are never paired here.

        Raises
        ------
        FramediffError
            ``device='gpu'`` and FAISS has no GPU support here (see :func:`gpu_faiss_available`).
        ValueError
            ``device`` is neither ``'cpu'`` nor ``'gpu'``.
        """
        if device not in ("cpu", "gpu"):
            raise ValueError(f"unknown device {device!r}; expected cpu or gpu")
        if device == "gpu" and not gpu_faiss_available():
            raise FramediffError("a search on the GPU needs FAISS with GPU support and a GPU (faiss-gpu)")
        s = self.signatures
        rows = np.arange(len(s)) if rows is None else np.asarray(rows, np.int64)
        rows = rows[s.ok[rows]]
        radii = {"vectors": radius, "levels": level_radius}
        found = np.concatenate([self._search_column(col, rows, radii[col], device) for col, _ in _CHANNELS])
        return np.unique(found, axis=0).astype(np.int64)

    def _search_column(self, col: str, rows: np.ndarray, radius: float, device: str) -> np.ndarray:
        """Pairs (a < b, possibly repeated) of ``rows`` within ``radius`` in column ``col``."""
        vectors = getattr(self.signatures, col)
        index = self._indexes[col]
        if isinstance(index, _faiss().IndexIVF):
            index.nprobe = self.nprobe  # before a GPU copy, which takes it along
        # A little slack, then the exact test: FAISS's rounding must not decide a pair.
        slack = radius * (1 + 1e-4) + 1e-5
        if device == "cpu":
            neighbours = index.range_search
        else:
            gpu = _on_gpu(index) if len(rows) else None  # no copy when nothing is asked

            def neighbours(queries, radius):
                return range_search_by_knn(gpu, queries, radius, max_k=GPU_MAX_K, fallback=index.range_search)

        found = [np.zeros((0, 2), np.int64)]
        for start in range(0, len(rows), _QUERY_BATCH):
            q = rows[start : start + _QUERY_BATCH]
            lims, _dist, ids = neighbours(np.ascontiguousarray(vectors[q]), slack)
            a = np.repeat(q, np.diff(lims).astype(np.int64))
            keep = ids != a
            a, b = a[keep], ids[keep]
            d = vectors[a].astype(np.float64) - vectors[b].astype(np.float64)
            close = np.einsum("ij,ij->i", d, d) <= radius
            found.append(np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], axis=1))
        return np.concatenate(found)

    def exact_pairs(self, rows=None) -> np.ndarray:
        """Pairs of byte-identical files involving ``rows`` (all rows when omitted).

        Each copy is paired with the first row holding the same bytes: enough to join
        them in :func:`duplicate_groups` without listing every pair of a large group.

        Returns
        -------
        numpy.ndarray of int64, shape (P, 2), ``a < b``, sorted
        """
        s = self.signatures
        rows = np.arange(len(s)) if rows is None else np.asarray(rows, np.int64)
        pairs = []
        for row in rows:
            if s.file_size[row] >= 0:
                first = self._by_content[s.content[row].tobytes()]
                if first != row:
                    pairs.append((first, row))
        return np.unique(np.array(pairs, np.int64).reshape(-1, 2), axis=0)

    def update(self, signatures: Signatures, *, radius: float = DEFAULT_RADIUS,
               level_radius: float = DEFAULT_LEVEL_RADIUS, device: str = "cpu"):  # fmt: skip
        """Add new images and search only new against all (radii and ``device`` as :meth:`search`).

        Returns
        -------
        rows : numpy.ndarray of int64
            Row numbers given to the new images.
        candidates : numpy.ndarray of int64, shape (P, 2)
            Near pairs (:meth:`search`) with at least one new image.
        exact : numpy.ndarray of int64, shape (Q, 2)
            Byte-identical pairs (:meth:`exact_pairs`) with at least one new image.
        """
        rows = self.add(signatures)
        near = self.search(rows, radius=radius, level_radius=level_radius, device=device)
        return rows, near, self.exact_pairs(rows)

    # ----------------------------------------------------------------- persistence

    def save(self, folder) -> Path:
        """Write the rows added since the last save and the index into ``folder``.

        The new rows go into a new Parquet part, the index into a new generation's
        file, then ``manifest.json`` (with every file's SHA-256) replaces the old one
        atomically; files of the previous generation are removed last.

        Raises
        ------
        FramediffError
            ``folder`` holds an index this one was not loaded from.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        saved = sum(self._parts)
        old = _read_manifest(folder) if (folder / MANIFEST).exists() else None
        parts = list(old["parts"]) if old else []
        if [p["rows"] for p in parts] != self._parts:
            raise FramediffError(
                f"{folder}: holds another duplicate index ({old['rows']} images); load it to add to it, "
                "or save into an empty folder"
            )
        if len(self) > saved:
            name = f"signatures-{len(self._parts):05d}.parquet"
            table = _to_table(self.signatures, saved, len(self))
            _atomic(folder / name, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
            parts.append({"file": name, "rows": len(self) - saved, "sha256": file_sha256(folder / name)})
        generation = self._generation + 1
        manifest = {
            "version": _VERSION,
            "params": dataclasses.asdict(self.params),
            "nprobe": self.nprobe,
            "ivf_from": self.ivf_from,
            "rows": len(self),
            "parts": parts,
        }
        for col, entry in _CHANNELS:
            name = f"{entry}-{generation:05d}.faiss"
            _atomic(folder / name, lambda tmp, index=self._indexes[col]: _faiss().write_index(index, str(tmp)))
            manifest[entry] = {"file": name, "sha256": file_sha256(folder / name)}
        data = json.dumps(manifest, indent=1).encode()
        _atomic(folder / MANIFEST, lambda tmp: Path(tmp).write_bytes(data))
        # Only now is the new generation the index: what else is ours goes (the previous
        # index, files of a save killed before its manifest, dead processes' temporaries).
        current = {*(manifest[entry]["file"] for _, entry in _CHANNELS), *(p["file"] for p in parts)}
        for entry in folder.iterdir():
            if entry.name not in current and _ours(entry.name):
                entry.unlink(missing_ok=True)
        clean_stale_temporaries(folder)
        self._parts = [p["rows"] for p in parts]
        self._generation = generation
        return folder

    @classmethod
    def load(cls, folder, *, params: SignatureParams | None = None) -> DuplicateIndex:
        """Open a saved index, checking every file against the manifest.

        Raises
        ------
        FramediffError
            No index there, a checksum differs, or ``params`` differ from the saved ones.
        """
        folder = Path(folder)
        manifest = _read_manifest(folder)
        saved = SignatureParams(**manifest["params"])
        if params is not None and params != saved:
            raise FramediffError(f"{folder}: the index was built with {saved}, not {params}")
        entries = [*manifest["parts"], *(manifest[entry] for _, entry in _CHANNELS)]
        for entry in entries:
            path = folder / entry["file"]
            if not path.is_file():
                raise FramediffError(f"{path}: missing from the duplicate index")
            if file_sha256(path) != entry["sha256"]:
                raise FramediffError(f"{path}: checksum differs from the manifest (damaged or changed)")
        self = cls(saved, nprobe=manifest["nprobe"], ivf_from=manifest["ivf_from"])
        parts = [_from_table(pq.read_table(folder / p["file"]), saved) for p in manifest["parts"]]
        self.signatures = Signatures.concat(parts) if parts else Signatures.empty(saved)
        if len(self.signatures) != manifest["rows"]:
            raise FramediffError(f"{folder}: {len(self.signatures)} signatures, the manifest says {manifest['rows']}")
        for row, (digest, size) in enumerate(zip(self.signatures.content, self.signatures.file_size)):
            if size >= 0:
                self._by_content.setdefault(digest.tobytes(), row)
        for col, entry in _CHANNELS:
            self._indexes[col] = _faiss().read_index(str(folder / manifest[entry]["file"]))
        self._parts = [p["rows"] for p in manifest["parts"]]
        self._generation = int(manifest["index"]["file"].split("-")[1].split(".")[0])
        return self


def _ours(name: str) -> bool:
    """A file name :meth:`DuplicateIndex.save` writes (besides the manifest)."""
    stem, _, ext = name.partition(".")
    kind, _, number = stem.partition("-")
    return number.isdigit() and (kind, ext) in (("index", "faiss"), ("levels", "faiss"), ("signatures", "parquet"))


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise FramediffError(f"{folder}: no duplicate index here ({MANIFEST} is missing)") from None
    except (OSError, ValueError) as exc:
        raise FramediffError(f"{folder / MANIFEST}: unreadable ({exc})") from None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and 0 < version < _VERSION:
        raise FramediffError(
            f"{folder}: a duplicate index of an earlier framediff (version {version}, without the block "
            f"levels this one searches): build a new one (--overwrite, or another --index)"
        )
    if version != _VERSION:
        raise FramediffError(f"{folder / MANIFEST}: not a version {_VERSION} duplicate-index manifest")
    return manifest


def _atomic(path: Path, write) -> None:
    """``write(tmp)``, synced, then renamed over ``path``: readers never see half a file,
    and a killed writer's temporary carries framediff's marker (cleaned up later)."""
    with atomic_path(path) as tmp:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


def _to_table(s: Signatures, start: int, stop: int) -> pa.Table:
    sl = slice(start, stop)
    dim, nbytes = s.vectors.shape[1], s.codes.shape[1]

    def vectors(array):
        return pa.FixedSizeListArray.from_arrays(pa.array(array[sl].ravel(), pa.float32()), dim)

    return pa.table({
        "path": pa.array(s.paths[sl], pa.string()),
        "content": _fixed_binary(np.ascontiguousarray(s.content[sl]).view(np.uint8), 16),
        "file_size": s.file_size[sl],
        "height": s.height[sl],
        "width": s.width[sl],
        "status": pa.array(s.status[sl].tolist(), pa.string()),
        "error": pa.array(s.error[sl], pa.string()),
        "decoded": s.decoded[sl],
        "vector": vectors(s.vectors),
        "levels": vectors(s.levels),
        "code": _fixed_binary(np.ascontiguousarray(s.codes[sl]), nbytes),
    })  # fmt: skip


def _fixed_binary(array: np.ndarray, width: int) -> pa.Array:
    """Fixed-width binary column straight from the bytes of a C-contiguous array."""
    n = array.size // width
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(array.tobytes())])


def _from_table(t: pa.Table, params: SignatureParams) -> Signatures:
    n = t.num_rows
    content = np.frombuffer(t.column("content").combine_chunks().buffers()[1], "V16", count=n).copy()
    codes = np.frombuffer(t.column("code").combine_chunks().buffers()[1], np.uint8, count=n * params.hash_bits // 8)

    def vectors(name):
        flat = t.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, params.dim).astype(np.float32)

    return Signatures(
        t.column("path").to_pylist(), content, t.column("file_size").to_numpy(), t.column("height").to_numpy(),
        t.column("width").to_numpy(), np.array(t.column("status").to_pylist(), "U16"), t.column("error").to_pylist(),
        t.column("decoded").to_numpy(zero_copy_only=False), vectors("vector"), vectors("levels"),
        codes.reshape(n, -1).copy(),
    )  # fmt: skip


# ------------------------------------------------------------------- groups, pairs


def _components(pairs, n: int) -> np.ndarray:
    """Union-find: the smallest row of each row's connected component."""
    parent = np.arange(n)

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees shallow
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(x) for x in range(n)])


def duplicate_groups(signatures: Signatures, pairs, *, keep_rule: str = "resolution") -> pa.Table:
    """Connected components of duplicate pairs, with a suggested keeper each.

    Parameters
    ----------
    signatures : Signatures
        Rows the pairs refer to.
    pairs : array of int, shape (P, 2)
        Duplicate pairs (confirmed near pairs and byte-identical pairs together).
    keep_rule : {'resolution', 'file-size', 'name'}
        ``'resolution'``: most pixels, then largest file, then earliest path;
        ``'file-size'``: largest file, then most pixels, then earliest path;
        ``'name'``: earliest path. Paths compare as strings.

    Returns
    -------
    pyarrow.Table
        One row per member of a group of two or more: ``group`` (numbered from 0 in the
        order of each group's first row), ``path``, ``keeper`` (exactly one per group),
        ``height``, ``width``, ``file_size``; sorted by group, then path.

    Raises
    ------
    ValueError
        Unknown ``keep_rule``, or a pair names a row outside ``signatures``.
    """
    rule = str(keep_rule).lower()
    if rule not in KEEP_RULES:
        raise ValueError(f"unknown keep rule {keep_rule!r}; expected one of {', '.join(KEEP_RULES)}")
    n = len(signatures)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"a pair names a row outside the {n} signatures")
    members = np.unique(pairs)
    if not len(members):
        return _groups_table([], [], [], [], [], [])
    roots = _components(pairs, n)[members]
    s = signatures
    pixels = s.height * s.width

    def rank(row):  # smaller is better
        key = {
            "resolution": (-pixels[row], -s.file_size[row]),
            "file-size": (-s.file_size[row], -pixels[row]),
            "name": (),
        }[rule]
        return (*key, s.paths[row])

    cols = [[] for _ in range(6)]
    for group, r in enumerate(np.unique(roots)):  # roots are each group's first row
        rows = sorted(members[roots == r], key=lambda k: s.paths[k])
        keeper = min(rows, key=rank)
        for row in rows:
            for col, value in zip(cols, (group, s.paths[row], row == keeper, s.height[row], s.width[row],
                                         s.file_size[row])):  # fmt: skip
                col.append(value)
    return _groups_table(*cols)


def _groups_table(group, path, keeper, height, width, size) -> pa.Table:
    return pa.table({
        "group": pa.array(group, pa.int64()),
        "path": pa.array(path, pa.string()),
        "keeper": pa.array(keeper, pa.bool_()),
        "height": pa.array(height, pa.int64()),
        "width": pa.array(width, pa.int64()),
        "file_size": pa.array(size, pa.int64()),
    })  # fmt: skip


def confirmation_pairs(candidates, *, exact=None, positions=None) -> list:
    """Candidate pairs as the explicit pair list that pairs mode measures.

    Parameters
    ----------
    candidates : array of int, shape (P, 2)
        Index rows (:meth:`DuplicateIndex.search`).
    exact : array of int, shape (Q, 2), optional
        Byte-identical pairs: left out, identical bytes need no pixel measurement.
    positions : array of int, optional
        ``positions[row]`` is the scan's input index of index row ``row``, when the
        scan's input list is not the index's row order; -1 for rows not scanned.

    Returns
    -------
    list of (int, int)
        Sorted unique ``(a, b)``, ``a < b``, ready for pairs mode's explicit pairs (``Inputs.pairs``).

    Raises
    ------
    ValueError
        A pair names a row that ``positions`` does not map to a scanned input.
    """
    pairs = np.asarray(candidates, np.int64).reshape(-1, 2)
    if exact is not None and len(exact):
        known = {(int(a), int(b)) for a, b in np.sort(np.asarray(exact, np.int64).reshape(-1, 2), axis=1)}
        pairs = np.array([p for p in np.sort(pairs, axis=1).tolist() if tuple(p) not in known], np.int64).reshape(-1, 2)
    if positions is not None:
        positions = np.asarray(positions, np.int64)
        pairs = positions[pairs]
        if len(pairs) and pairs.min() < 0:
            raise ValueError("a candidate pair names an image that is not among the scanned inputs")
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return [(int(a), int(b)) for a, b in pairs]
