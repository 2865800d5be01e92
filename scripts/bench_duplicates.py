#!/usr/bin/env python
"""Near-duplicate search, side by side with its ceiling and its peers, in one run.

1. Signature pass against the 1/8-scale decode ceiling, at 1 and 2 Dask workers
   (local processes, one thread each), on N JPEGs of 1600x1200 cut from real
   photographs (``skimage.data``). The ceiling only decodes each file at 1/8 scale to
   luma; the signature pass reads, hashes, decodes and derives the descriptors. The two
   alternate over five rounds on one cluster; the ratio is the median round's.
2. Search for 10k, 100k and 1M signatures, each size in its own subprocess (its own
   peak RSS): index build, range search of every image against all, the explicit pair
   list for confirmation. The vectors are synthesised from real ones (block-mean
   vectors and block levels of windows of the photographs at random positions and
   scales): each is a random blend of two real ones plus Gaussian noise (the block
   means renormalised), and 1 % of them are planted near-copies of another (noise
   small enough to stay within both radii).
   Recall against exact brute force is measured on a sample of query rows, and the
   planted pairs' recall on all of them. Then 10,000 new images are added to the
   largest index and searched new-against-all (the nightly update), saved and timed.
   The exponent of time and memory in n is fitted over the sizes.
3. Accuracy on planted edits (every ``skimage.data`` photograph as JPEG, PNG, TIFF, BMP,
   GIF and WebP, at several qualities, half size, cropped 3 %, brightness +-10 %,
   rotated 2 degrees; plus the ``iscc-samples`` photo in its formats when installed):
   pair recall and precision of framediff's block-mean search (default radius) and its
   DCT hash, beside ``imagehash`` pHash and dHash at Hamming <= 10, and per edit.

4. Pixels: ``framediff.scan(mode="duplicates")`` against brute-force
   ``framediff.scan(mode="pairs")`` at the same options and thresholds, on planted sets
   of small real pictures (windows of the photographs, each as original, PNG, JPEG q30,
   brightness +10 % and half size): wall time of both, and the duplicate pairs of the
   index route scored against brute force (recall; false = pairs brute force does not
   report). Brute force runs only up to ``--pairs-up-to`` images (n^2/2 measurements);
   up to ``--exact-up-to`` images the truth is the exact reference instead: pairs mode's
   duplicates computed with the scan's own decode, preparation, measurement and
   thresholds, every image decoded once and only the pairs a proven bound on
   l0_fraction leaves measured (see ``exact_pairs_reference``). It is first checked
   equal to pairs mode itself on ``--exact-validate`` images (the run stops otherwise),
   and up to ``--exact-check-up-to`` images every pair is measured to count the
   duplicates the bound would have cut. Beyond both the duplicates route runs alone.
   Brute-force time is extrapolated by n^2 where pairs mode did not run.
   With ``--candidates N,...`` sets too dense for a full confirmation run (at 20,000
   planted windows the search proposes millions of pairs) are scored from the index's
   candidates alone (see ``bench_candidates``): the route reports exactly the
   reference's pairs among its candidates.

Usage:  python scripts/bench_duplicates.py [--files 300] [--sizes 10000,100000,1000000]
                                           [--update 10000] [--pixels 100,200,400,2000]
                                           [--pairs-up-to 400] [--exact-up-to 0]
                                           [--exact-validate 300] [--exact-check-up-to 2000]
                                           [--candidates 20000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------ 1. signature pass


def _make_jpegs(directory: Path, n: int) -> list:
    from PIL import Image

    from framediff.planted import PHOTOS, photo

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        image = photo(PHOTOS[k % len(PHOTOS)])
        h, w = image.shape[:2]
        y, x = rng.integers(0, h // 4 + 1), rng.integers(0, w // 4 + 1)
        window = Image.fromarray(image[y : y + 3 * h // 4, x : x + 3 * w // 4]).resize((1600, 1200), Image.BICUBIC)
        path = directory / f"photo{k:05d}.jpg"
        window.save(path, "JPEG", quality=88)
        paths.append(str(path))
    return paths


def _decode_chunk(paths):
    from framediff.decode import read_image

    for p in paths:
        read_image(p, gray="luma", scale=1 / 8)
    return len(paths)


def _signature_chunk(paths):
    from framediff.thumbnails import signatures_of

    return len(signatures_of(paths))


def bench_signature_pass(paths: list, workers: int, rounds: int = 5) -> dict:
    """Signature pass and decode ceiling on one cluster, alternating ``rounds`` times.

    Each round times the ceiling, then the signatures, over every file; the ratio is
    the median of the rounds' ratios, so a drift of the machine's speed (a shared host)
    weighs on both sides of each ratio alike.
    """
    import statistics

    from dask.distributed import Client, LocalCluster

    chunks = [paths[i : i + 25] for i in range(0, len(paths), 25)]
    rates = {"ceiling": [], "signatures": []}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        client.gather(client.map(_signature_chunk, chunks[:workers], pure=False))  # warm-up: imports
        client.gather(client.map(_decode_chunk, chunks[:workers], pure=False))
        for _ in range(rounds):
            for name, fn in (("ceiling", _decode_chunk), ("signatures", _signature_chunk)):
                t = time.perf_counter()
                n = sum(client.gather(client.map(fn, chunks, pure=False)))
                rates[name].append(n / (time.perf_counter() - t))
    ratios = [s / c for s, c in zip(rates["signatures"], rates["ceiling"])]
    return {
        "ceiling": statistics.median(rates["ceiling"]),
        "signatures": statistics.median(rates["signatures"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


# --------------------------------------------------------------------- 2. scale


def _real_vectors(n: int) -> tuple:
    """Block-mean vectors and block levels of ``n`` windows of real photographs (random
    place and scale)."""
    from framediff.kernels.signatures import block_means, level_means, thumbnail
    from framediff.planted import PHOTOS, photo
    from framediff.thumbnails import SignatureParams

    params = SignatureParams()
    rng = np.random.default_rng(0)
    images = [photo(p) for p in PHOTOS]
    thumbs = []
    for _ in range(n):
        image = images[rng.integers(len(images))]
        h, w = image.shape[:2]
        f = rng.uniform(0.3, 1.0)
        wh, ww = max(8, int(f * h)), max(8, int(f * w))
        y, x = rng.integers(0, h - wh + 1), rng.integers(0, w - ww + 1)
        thumbs.append(thumbnail(image[y : y + wh, x : x + ww], side=params.side) / 255.0)
    thumbs = np.stack(thumbs)
    return block_means(thumbs, grid=params.grid), level_means(thumbs, grid=params.grid, clip=params.level_clip)


def _unit(v):
    v = v - v.mean(axis=1, keepdims=True)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _synthetic(real: tuple, n: int, seed: int, offset: int = 0):
    """``n`` signatures blended from ``real`` (vectors, levels); 1 % planted near-copies
    of another row."""
    from framediff.thumbnails import SignatureParams, Signatures

    real_vectors, real_levels = real
    dim = real_vectors.shape[1]
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, dim), np.float32)
    levels = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # blocks: the temporaries stay small
        m = min(n, s + 100_000) - s
        a, b = rng.integers(len(real_vectors), size=(2, m))
        alpha = rng.uniform(0, 1, (m, 1)).astype(np.float32)
        mix = alpha * real_vectors[a] + (1 - alpha) * real_vectors[b]
        vectors[s : s + m] = _unit(mix + rng.normal(0, 0.15, (m, dim)))
        mix = alpha * real_levels[a] + (1 - alpha) * real_levels[b]
        levels[s : s + m] = np.clip(mix + rng.normal(0, 0.05, (m, dim)), 0, 1)
    # Copies in the second half, of rows in the first: no copy is itself overwritten.
    copies = n // 2 + rng.choice(n - n // 2, size=n // 100, replace=False)
    sources = rng.integers(0, n // 2, size=len(copies))
    vectors[copies] = _unit(vectors[sources] + rng.normal(0, 0.02, (len(copies), dim)))
    levels[copies] = levels[sources] + rng.normal(0, 0.005, (len(copies), dim))
    s = Signatures.empty(SignatureParams())
    s.paths = [f"img{offset + k:08d}.jpg" for k in range(n)]
    s.content = np.frombuffer(rng.bytes(16 * n), "V16").copy()
    s.file_size = rng.integers(50_000, 5_000_000, n)
    s.height = np.full(n, 1200, np.int64)
    s.width = np.full(n, 1600, np.int64)
    s.status = np.full(n, "ok", "U16")
    s.error = [""] * n
    s.decoded = np.ones(n, bool)
    s.vectors = vectors
    s.levels = levels
    s.codes = np.zeros((n, 8), np.uint8)
    planted = np.stack([np.minimum(sources, copies), np.maximum(sources, copies)], axis=1) + offset
    return s, planted


def _exact_neighbours(signatures, queries):
    """Brute force: every row near each query row in either vector, as the index's
    default radii define near."""
    from framediff.dupindex import DEFAULT_LEVEL_RADIUS, DEFAULT_RADIUS

    return _exact_within(signatures.vectors, queries, DEFAULT_RADIUS) | _exact_within(
        signatures.levels, queries, DEFAULT_LEVEL_RADIUS
    )


def _exact_within(vectors, queries, radius):
    """Every row within ``radius`` of each query row, in blocks of queries."""
    found = set()
    norms = np.einsum("ij,ij->i", vectors, vectors)
    for s in range(0, len(queries), 64):
        q = queries[s : s + 64]
        d2 = norms[None, :] + norms[q, None] - 2 * (vectors[q] @ vectors.T)
        for qi, j in zip(*np.nonzero(d2 <= radius * 1.01 + 1e-4)):  # float32 sieve, then exact
            a, b = int(q[qi]), int(j)
            diff = vectors[a].astype(np.float64) - vectors[b].astype(np.float64)
            if a != b and diff @ diff <= radius:
                found.add((min(a, b), max(a, b)))
    return found


def worker_scale(n: int, update: int, real_n: int, folder: str | None) -> dict:
    from framediff.dupindex import DuplicateIndex, confirmation_pairs

    real = _real_vectors(real_n)
    sigs, planted = _synthetic(real, n, seed=1)
    rss_data = _rss_mib()
    t, c = time.perf_counter(), time.process_time()
    index = DuplicateIndex()
    index.add(sigs)
    t_build, c_build = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    near = index.search()
    pairs = confirmation_pairs(near, exact=index.exact_pairs())
    t_search, c_search = time.perf_counter() - t, time.process_time() - c
    rss_search = _rss_mib()  # before the checks below allocate their own
    found = {(int(a), int(b)) for a, b in near}
    planted_recall = np.mean([(int(a), int(b)) in found for a, b in planted])
    rng = np.random.default_rng(2)
    queries = rng.choice(n, size=min(n, 500), replace=False)
    truth = _exact_neighbours(sigs, queries)
    asked = set(queries.tolist())
    sampled = {p for p in found if p[0] in asked or p[1] in asked}
    mine = {p for p in sampled if p in truth}
    out = {
        "n": n, "kind": index.kind, "build_s": t_build, "search_s": t_search, "pairs": len(pairs),
        "cpu_s": c_build + c_search,
        "planted_recall": float(planted_recall), "sample_recall": len(mine) / max(1, len(truth)),
        "sample_false": len(sampled - truth), "rss_data_mib": rss_data, "peak_rss_mib": rss_search,
    }  # fmt: skip
    if update:
        new, new_planted = _synthetic(real, update, seed=3, offset=n)
        # Plant new images near old ones too: the case a nightly job is for.
        old = rng.choice(n, size=update // 10, replace=False)
        dim = sigs.vectors.shape[1]
        new.vectors[: len(old)] = _unit(sigs.vectors[old] + rng.normal(0, 0.02, (len(old), dim)))
        new.levels[: len(old)] = sigs.levels[old] + rng.normal(0, 0.005, (len(old), dim))
        t, c = time.perf_counter(), time.process_time()
        rows, cand, _exact = index.update(new)
        out["update_s"], out["update_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        got = {(int(a), int(b)) for a, b in cand}
        out["update_recall_old"] = float(np.mean([(int(o), n + k) in got for k, o in enumerate(old)]))
        out["update_pairs"] = len(got)
        if folder:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)  # a fresh index goes into an empty folder
            t = time.perf_counter()
            index.save(folder)
            out["save_full_s"] = time.perf_counter() - t
            index.update(_synthetic(real, update, seed=4, offset=n + update)[0])
            t = time.perf_counter()
            index.save(folder)
            out["save_update_s"] = time.perf_counter() - t
            del index
            t = time.perf_counter()
            DuplicateIndex.load(folder)
            out["load_s"] = time.perf_counter() - t
    out["peak_rss_all_mib"] = _rss_mib()
    return out


# ------------------------------------------------------------------ 3. accuracy


def worker_accuracy(directory: str) -> dict:
    import imagehash
    from PIL import Image

    from framediff.dupindex import DEFAULT_LEVEL_RADIUS, DEFAULT_RADIUS, DuplicateIndex
    from framediff.kernels.signatures import hamming
    from framediff.planted import PHOTOS, make_planted, photo
    from framediff.thumbnails import signatures_of

    planted = make_planted(directory, [photo(p) for p in PHOTOS])
    paths, group, edit = list(planted.paths), list(planted.group), list(planted.edit)
    try:  # the same CC-BY photo in six formats
        import iscc_samples

        for p in iscc_samples.images():
            if not p.name.endswith(".psd"):
                paths.append(str(p))
                group.append(len(PHOTOS))
                edit.append("iscc-" + p.suffix[1:])
    except ImportError:
        pass
    group = np.array(group)
    n = len(paths)
    truth = {(a, b) for a in range(n) for b in range(a + 1, n) if group[a] == group[b]}
    index = DuplicateIndex()
    index.add(signatures_of(paths))
    methods = {"framediff search (either vector)": {tuple(map(int, p)) for p in index.search()}}
    for name, col, radius in (("means alone (r>=0.85)", "vectors", DEFAULT_RADIUS),
                              ("levels alone", "levels", DEFAULT_LEVEL_RADIUS)):  # fmt: skip
        v = getattr(index.signatures, col).astype(np.float64)
        d2 = ((v[:, None] - v[None]) ** 2).sum(-1)
        methods[f"framediff {name}"] = {(a, b) for a, b in zip(*np.nonzero(np.triu(d2 <= radius, 1)))}
    codes = index.signatures.codes
    ham = hamming(codes[:, None], codes[None])
    methods["framediff DCT hash (Hamming<=10)"] = {(a, b) for a in range(n) for b in range(a + 1, n) if ham[a, b] <= 10}
    for name, fn in (
        ("imagehash pHash (Hamming<=10)", imagehash.phash),
        ("imagehash dHash (Hamming<=10)", imagehash.dhash),
    ):
        hashes = []
        for p in paths:
            with Image.open(p) as im:
                hashes.append(fn(im))
        methods[name] = {(a, b) for a in range(n) for b in range(a + 1, n) if hashes[a] - hashes[b] <= 10}
    out = {"files": n, "true_pairs": len(truth), "methods": {}}
    originals = {group[k]: k for k in range(n) if edit[k] in ("original", "iscc-jpg")}
    for name, found in methods.items():
        per_edit = {}
        for e in sorted(set(edit) - {"original", "iscc-jpg"}):
            ks = [k for k in range(n) if edit[k] == e]
            per_edit[e] = float(np.mean([tuple(sorted((k, originals[group[k]]))) in found for k in ks]))
        tp = len(found & truth)
        out["methods"][name] = {"recall": tp / len(truth), "precision": tp / max(1, len(found)),
                                "false_pairs": len(found - truth), "per_edit": per_edit}  # fmt: skip
    return out


# -------------------------------------------------------------------- 4. pixels

PIXEL_EDITS = ("png", "jpeg-q30", "brighter-10pct", "half-size")
PIXEL_PARAMS = dict(resize="smallest", thresholds={"l0_fraction": 0.05, "kl": 0.3}, workers=2)


def _duplicate_pairs(df) -> set:
    d = df[(df.status == "ok") & (df.changed == False)]  # noqa: E712 (a column)
    return {tuple(sorted(p)) for p in zip(d.path_a, d.path_b)}


# The exact reference: what ``framediff.scan(folder, mode="pairs", **params)`` reports as
# duplicates, computed with the scan's own decode, preparation and measurement functions
# but without a report row per pair: every image is decoded and prepared once, pairs that
# provably cannot be unchanged are dropped by a bound, and the rest are measured.
#
# Why the bound holds. Pairs mode calls a pair unchanged only if no threshold is crossed,
# so in particular l0_fraction <= f, where l0_fraction is the share of the N pixels with
# |d| > t (d = a - b of the prepared frames, t = tol; for integer frames the scan counts
# |d| > floor(t), the same set). Every other pixel has |d| <= t, and no pixel has |d| > R,
# R = largest minus smallest prepared pixel value of the frames compared. With c <= f N
# pixels above t:  mean|d| <= ((N - c) t + c R) / N <= t + f max(R - t, 0).  For disjoint
# blocks B_k of the frame (pixels outside every block left out), by the triangle inequality
#   sum_k |sum_{B_k} d| / N  <=  sum_k sum_{B_k} |d| / N  <=  mean|d|.
# The left side is the L1 distance of the two frames' vectors of block sums divided by N.
# So a pair whose block-sum distance exceeds t + f max(R - t, 0) has l0_fraction > f:
# pairs mode reports it changed, and dropping it loses no duplicate. (Checked, not only
# argued: with ``prune=False`` every pair is measured and the duplicates the bound would
# drop are counted; tests/test_bench_exact_reference.py and the benchmark's own check
# compare the reference with pairs mode itself.)

#: Blocks per side of the bound's grid: a finer grid gives a tighter bound for more work.
#: On the planted 20,000 images 16 leaves 11 million of 2e8 pairs to measure (8: 21 million).
BOUND_GRID = 16
#: Pairs measured per call of the scan's batch measurement (bounded temporaries).
MEASURE_BATCH = 20_000


def _block_sums(pixels: np.ndarray, grid: int = BOUND_GRID) -> np.ndarray:
    """Each frame's sums over a ``grid`` x ``grid`` block grid, divided by its pixel count."""
    n, h, w = pixels.shape
    bh, bw = max(1, h // grid), max(1, w // grid)
    gh, gw = h // bh, w // bw
    sums = pixels[:, : gh * bh, : gw * bw].reshape(n, gh, bh, gw, bw).sum(axis=(2, 4), dtype=np.float64)
    return sums.reshape(n, -1) / (h * w)


def _frame_groups(paths, opts):
    """Decode every input once as pairs mode does: ``{(shape, source dtype): [(index, raw)]}``."""
    from framediff.decode import DecodeError
    from framediff.engine import fit_frame, read_frame_typed

    groups: dict = {}
    for i, path in enumerate(paths):
        try:
            raw, source = read_frame_typed(path, opts)
        except DecodeError:
            continue  # an error row in pairs mode: never a duplicate
        raw, _action = fit_frame(np.array(raw, copy=True), opts)  # the decoder reuses its buffer
        groups.setdefault((raw.shape[:2], np.dtype(source).str), []).append((i, raw))
    return groups


def _as_compared(members, other_shape, opts):
    """The raw frames of one shape group as pairs mode compares them with ``other_shape``."""
    from framediff.engine import reconcile_pair

    template = np.zeros(other_shape, members[0][1].dtype)
    # reconcile_pair resizes the frame with more pixels to the other's shape, whichever
    # of the two it is: the result for this frame depends only on its own pixels.
    return np.stack([reconcile_pair(raw, template, opts)[0] for _, raw in members])


def _pair_blocks(ua, ub, same: bool, bound: float, prune: bool, block: int = 256):
    """The pairs of two groups, a block of rows at a time: ``(rows, cols, within)``.

    ``within`` tells which pairs have a block-sum L1 distance within ``bound``; with
    ``prune`` only those are listed, otherwise every pair (``i < j`` when ``same``).
    """
    from scipy.spatial.distance import cdist

    for s in range(0, len(ua), block):
        start = s if same else 0
        within = cdist(ua[s : s + block], ub[start:], "cityblock") <= bound
        wanted = within.copy() if prune else np.ones_like(within)
        if same:
            wanted &= np.arange(start, len(ub))[None, :] > np.arange(s, s + len(within))[:, None]
        i, j = np.nonzero(wanted)
        yield i + s, j + start, within[i, j]


def _unchanged(stack_a, rows, stack_b, cols, opts, thresholds) -> np.ndarray:
    """Which pairs ``(stack_a[rows[k]], stack_b[cols[k]])`` the scan's own batch
    measurement and thresholds call unchanged."""
    from framediff.engine import measure_pairs
    from framediff.thresholds import changed_flags

    out = np.zeros(len(rows), bool)
    for s in range(0, len(rows), MEASURE_BATCH):
        values = measure_pairs(stack_a, rows[s : s + MEASURE_BATCH], stack_b, cols[s : s + MEASURE_BATCH], opts)
        out[s : s + MEASURE_BATCH] = ~changed_flags(values, thresholds)
    return out


def exact_pairs_reference(folder, params=None, *, prune: bool = True) -> tuple:
    """The duplicate pairs brute-force pairs mode reports, without a pipeline row per pair.

    Parameters
    ----------
    folder : path
        The images (discovered as ``framediff.scan`` discovers them).
    params : dict, optional
        Scan parameters (default :data:`PIXEL_PARAMS`); ``mode`` is ``pairs``.
    prune : bool
        Measure only the pairs the l0_fraction bound leaves (see the note above);
        ``False`` measures every pair and counts the duplicates the bound would have
        dropped (``cut``: zero, or the bound is wrong).

    Returns
    -------
    pairs : set of (str, str)
        Report paths of every pair with status ok and ``changed`` False, each sorted.
    stats : dict
        ``images``, ``all_pairs``, ``measured`` pairs, ``within`` (pairs the bound
        leaves), ``bound``, ``cut`` and the seconds of each step.

    Raises
    ------
    ValueError
        Options the reference does not reproduce: no thresholds, pairwise options or
        cropping, or two shapes of one area under ``resize='smallest'`` (there the
        pair order decides which frame is resized).
    """
    from framediff.engine import prepare_stack
    from framediff.request import ScanRequest
    from framediff.scan import discover_stage, plan_stage

    params = dict(PIXEL_PARAMS if params is None else params, mode="pairs")
    t0 = time.perf_counter()
    # The scan's own request and plan stages: the same discovery, names and options.
    request = ScanRequest.build(folder, **params)
    planned = plan_stage(request, discover_stage(request))
    opts, names, paths = planned.spec.options, planned.spec.names, planned.inputs.paths
    thresholds = planned.spec.thresholds.as_dict()
    if opts.pairwise or opts.crop or not thresholds:
        raise ValueError("the exact reference needs thresholds, and no pairwise options or crop")
    # Only the metrics the thresholds read: each value is computed on its own.
    measure_opts = opts.replace(metrics=tuple(thresholds))
    groups = _frame_groups(paths, opts)
    keys = sorted(groups, key=lambda k: (-k[0][0] * k[0][1], k))
    n = len(paths)
    stats = {"images": n, "all_pairs": n * (n - 1) // 2, "measured": 0, "within": 0, "cut": 0}
    stats["load_s"] = time.perf_counter() - t0
    measure_s = 0.0
    found = set()
    for gi, key_a in enumerate(keys):
        for key_b in keys[gi:]:
            (shape_a, source_a), (shape_b, source_b) = key_a, key_b
            if source_a != source_b:
                continue  # not comparable: an error row
            if shape_a != shape_b:
                if opts.resize == "error":
                    continue  # a size-mismatch row
                if shape_a[0] * shape_a[1] == shape_b[0] * shape_b[1]:
                    raise ValueError(f"shapes {shape_a} and {shape_b} have one area: not reproduced")
            same = key_a == key_b
            stack_a = prepare_stack(_as_compared(groups[key_a], shape_b, opts), measure_opts, np, source_dtype=source_a)
            stack_b = (
                stack_a
                if same
                else prepare_stack(_as_compared(groups[key_b], shape_a, opts), measure_opts, np, source_dtype=source_b)
            )
            index_a = np.array([i for i, _ in groups[key_a]])
            index_b = np.array([i for i, _ in groups[key_b]])
            bound = np.inf
            if "l0_fraction" in thresholds:
                low = min(stack_a.pixels.min(), stack_b.pixels.min())
                spread = float(max(stack_a.pixels.max(), stack_b.pixels.max())) - float(low)
                bound = opts.tol + thresholds["l0_fraction"] * max(spread - opts.tol, 0.0)
                stats["bound"] = bound
            sums_a, sums_b = _block_sums(stack_a.pixels), _block_sums(stack_b.pixels)
            # A relative 1e-9 above the bound: the float sums may round either way.
            for rows, cols, within in _pair_blocks(sums_a, sums_b, same, bound * (1 + 1e-9), prune):
                t = time.perf_counter()
                # Pairs mode measures (a, b), a the earlier input: KL(p_a || p_b) is not symmetric.
                a_first = index_a[rows] < index_b[cols]
                unchanged = np.empty(len(rows), bool)
                unchanged[a_first] = _unchanged(stack_a, rows[a_first], stack_b, cols[a_first], measure_opts,
                                                thresholds)  # fmt: skip
                unchanged[~a_first] = _unchanged(stack_b, cols[~a_first], stack_a, rows[~a_first], measure_opts,
                                                 thresholds)  # fmt: skip
                stats["measured"] += len(rows)
                stats["within"] += int(within.sum())
                stats["cut"] += int((unchanged & ~within).sum())
                for a, b in zip(index_a[rows[unchanged]], index_b[cols[unchanged]]):
                    found.add(tuple(sorted((names[a], names[b]))))
                measure_s += time.perf_counter() - t
    stats["total_s"] = time.perf_counter() - t0
    # The rest: preparing the groups and the bound's distances.
    stats["measure_s"], stats["bound_s"] = measure_s, stats["total_s"] - stats["load_s"] - measure_s
    return found, stats


def _planted_pixels(work: Path, n: int) -> Path:
    from framediff.planted import make_planted, windows

    folder = work / f"pixels-{n}"
    make_planted(folder, windows(max(1, n // (1 + len(PIXEL_EDITS)))), edits=PIXEL_EDITS)
    return folder


def validate_exact_reference(work: Path, n: int) -> dict:
    """The exact reference against brute-force pairs mode itself on ``n`` planted images.

    Raises
    ------
    AssertionError
        The pruned or unpruned reference differs from pairs mode, in any pair.
    """
    import framediff

    folder = _planted_pixels(work, n)
    t0 = time.perf_counter()
    truth = _duplicate_pairs(framediff.scan(folder, mode="pairs", **PIXEL_PARAMS))
    out = {"n": len(list(folder.iterdir())), "pairs_s": time.perf_counter() - t0, "truth": len(truth)}
    pruned, stats = exact_pairs_reference(folder)
    every, check = exact_pairs_reference(folder, prune=False)
    for name, got in (("pruned", pruned), ("unpruned", every)):
        if got != truth:  # not an assert: it must hold under python -O too
            raise AssertionError(
                f"the {name} exact reference differs from pairs mode on {out['n']} images: "
                f"{sorted(got - truth)[:5]} not in pairs mode, {sorted(truth - got)[:5]} missing"
            )
    out.update(ref_s=stats["total_s"], within=stats["within"], cut=check["cut"], all_pairs=stats["all_pairs"])
    return out


def _missed(folder: Path, expected: set, found: set) -> set:
    """Pairs of ``expected`` not in ``found``, byte-identical copies aside: the mode lists
    those against the first copy only, the rest are implied."""
    content = {p.name: p.read_bytes() for p in folder.iterdir()}
    return {(a, b) for a, b in expected - found if content[a] != content[b]}


def bench_pixels(work: Path, n: int, truth: str | None, check: bool = False) -> dict:
    """Duplicates mode on ``n`` planted small pictures, scored against ``truth``.

    ``truth`` is ``"pairs"`` (brute-force pairs mode), ``"exact"`` (the exact reference,
    with ``check`` every pair measured to count what the bound cut) or None.
    """
    import pandas as pd

    import framediff

    folder = _planted_pixels(work, n)
    out = {"n": len(list(folder.iterdir()))}
    t0, c0 = time.perf_counter(), time.process_time()
    # Into a report, read back in four columns: at 20,000 images there are millions of rows.
    report = work / f"duplicates-{n}.parquet"
    s = framediff.run_scan(folder, mode="duplicates", output=report, overwrite=True, **PIXEL_PARAMS).summary
    out["dup_s"], out["dup_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out["measured"] = s["candidate_pairs"]
    out["signature_s"], out["search_s"] = s["signature_seconds"], s["search_seconds"]
    found = _duplicate_pairs(pd.read_parquet(report, columns=["path_a", "path_b", "status", "changed"]))
    out["found"] = len(found)
    if truth == "pairs":
        t0 = time.perf_counter()
        expected = _duplicate_pairs(framediff.scan(folder, mode="pairs", **PIXEL_PARAMS))
        out["pairs_s"] = time.perf_counter() - t0
    elif truth == "exact":
        expected, stats = exact_pairs_reference(folder, prune=not check)
        out.update(ref_s=stats["total_s"], within=stats["within"], ref_measured=stats["measured"])
        out["cut"] = stats["cut"] if check else None
    else:
        return out
    out["truth"] = len(expected)
    missed = _missed(folder, expected, found)
    out["recall"] = 1 - len(missed) / max(1, len(expected))
    out["false"] = len(found - expected)
    out["missed_examples"] = sorted(missed)[:5]
    out["false_examples"] = sorted(found - expected)[:5]
    return out


def bench_candidates(work: Path, n: int) -> dict:
    """The index route's recall on ``n`` planted pictures, from its candidates alone.

    Duplicates mode reports a pair exactly when the pair is a candidate of its search
    (or byte-identical) and pairs mode's measurement calls it unchanged: the
    confirmation is pairs mode's own measurement of that pair (checked row for row on
    the smaller sets of this part). So the pairs the full run would report are the
    exact reference's pairs among the candidates, and recall is measured by running
    the mode's signature pass and search over the set (as the mode does, same
    parameters and radius) and the exact reference, without the millions of
    confirmation rows a dense set asks for. No false pair can come out of this route by
    construction; the full runs above count them.
    """
    from framediff.dupindex import DuplicateIndex, level_radius
    from framediff.modes.duplicates import SIGNATURE_PARAMS
    from framediff.options import make_options
    from framediff.thumbnails import signatures_of

    folder = _planted_pixels(work, n)
    paths = sorted(folder.iterdir())
    t0 = time.perf_counter()
    index = DuplicateIndex(SIGNATURE_PARAMS)
    index.add(signatures_of([str(p) for p in paths], params=SIGNATURE_PARAMS))
    # The radii the mode searches with under these options.
    near = index.search(level_radius=level_radius(make_options(tol=PIXEL_PARAMS.get("tol")).tol, SIGNATURE_PARAMS.dim))
    out = {"n": len(paths), "search_s": time.perf_counter() - t0, "measured": len(near)}
    names = [p.name for p in paths]
    candidates = {tuple(sorted((names[a], names[b]))) for a, b in near.tolist()}
    expected, stats = exact_pairs_reference(folder)
    out.update(ref_s=stats["total_s"], truth=len(expected), all_pairs=stats["all_pairs"])
    missed = sorted(_missed(folder, expected, candidates))
    out["recall"] = 1 - len(missed) / max(1, len(expected))
    out["missed_examples"] = missed[:5]
    return out


# ---------------------------------------------------------------------- driver


def _child(kind: str, args: list) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _exponent(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="JPEGs of the signature pass")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--update", type=int, default=10_000, help="new images added to the largest index")
    parser.add_argument("--real", type=int, default=2000, help="real vectors the synthetic ones are blended from")
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    parser.add_argument("--pixels", default="100,200,400,2000", help="image counts of the pixel comparison")
    parser.add_argument("--pairs-up-to", type=int, default=400, help="largest set brute-force pairs mode runs on")
    parser.add_argument(
        "--exact-up-to",
        type=int,
        default=0,
        help="largest set scored against the exact reference (above --pairs-up-to)",
    )
    parser.add_argument(
        "--exact-validate",
        type=int,
        default=300,
        help="images of the set on which the exact reference must equal pairs mode first",
    )
    parser.add_argument(
        "--exact-check-up-to",
        type=int,
        default=2000,
        help="largest exact-scored set on which every pair is measured, to count what the bound cut",
    )
    parser.add_argument(
        "--candidates",
        default="",
        help="image counts whose recall is scored from the index's candidates against the exact reference "
        "(no confirmation run; e.g. 20000)",
    )
    parser.add_argument("--skip", default="", help="comma list of parts to skip: pass,scale,accuracy,pixels")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "scale":
            result = worker_scale(int(rest[0]), int(rest[1]), int(rest[2]), rest[3] if len(rest) > 3 else None)
        else:
            result = worker_accuracy(rest[0])
        print(json.dumps(result))
        return 0

    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.out or tempfile.mkdtemp(prefix="framediff-dup-"))
    print(f"# bench_duplicates: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")

    if "pass" not in skip:
        paths = _make_jpegs(work / "jpegs", args.files)
        print(f"\n## signature pass: {len(paths)} JPEGs 1600x1200, Dask local processes")
        print(f"{'workers':>8} {'ceiling img/s':>14} {'signatures img/s':>17} {'ratio':>6}  (target >= 0.85)"
              "  ratio of each round")  # fmt: skip
        for w in (1, 2):
            r = bench_signature_pass(paths, w)
            rounds = " ".join(f"{v:.2f}" for v in r["ratios"])
            print(f"{w:>8} {r['ceiling']:>14.1f} {r['signatures']:>17.1f} {r['ratio']:>6.2f}  {rounds}")

    if "scale" not in skip:
        sizes = [int(s) for s in args.sizes.split(",")]
        print(f"\n## search: synthetic signatures blended from {args.real} real ones, each size in its own process")
        print(f"{'n':>9} {'index':>5} {'build s':>8} {'search s':>9} {'total s':>8} {'peak RSS MiB':>13} "
              f"{'pairs':>8} {'planted recall':>15} {'sample recall':>14} {'false':>6}")  # fmt: skip
        rows = []
        for n in sizes:
            last = n == sizes[-1]
            folder = str(work / f"index-{n}") if last else None
            r = _child("scale", [n, args.update if last else 0, args.real, *([folder] if folder else [])])
            rows.append(r)
            total = r["build_s"] + r["search_s"]
            print(f"{n:>9} {r['kind']:>5} {r['build_s']:>8.1f} {r['search_s']:>9.1f} {total:>8.1f} {r['cpu_s']:>7.1f} "
                  f"{r['peak_rss_mib']:>13.0f} {r['pairs']:>8} {r['planted_recall']:>15.4f} "
                  f"{r['sample_recall']:>14.4f} {r['sample_false']:>6}")  # fmt: skip
        if len(rows) > 1:
            ns = [r["n"] for r in rows]
            t_exp = _exponent(ns, [r["build_s"] + r["search_s"] for r in rows])
            m_exp = _exponent(ns, [r["peak_rss_mib"] for r in rows])
            c_exp = _exponent(ns, [r["cpu_s"] for r in rows])
            print(
                f"fitted exponent: time n^{t_exp:.2f}, CPU time n^{c_exp:.2f}, peak RSS n^{m_exp:.2f} "
                f"(over {ns[0]}..{ns[-1]})"
            )
        big = rows[-1]
        total = big["build_s"] + big["search_s"]
        print(f"target at n={big['n']}: < 600 s and < 4096 MiB -> {total:.0f} s ({big['cpu_s']:.0f} CPU s), "
              f"{big['peak_rss_mib']:.0f} MiB: "
              f"{'met' if total < 600 and big['peak_rss_mib'] < 4096 else 'NOT met'}")  # fmt: skip
        if "update_s" in big:
            print(
                f"update: {args.update} new against {big['n']}: {big['update_s']:.1f} s in memory "
                f"({big['update_cpu_s']:.1f} CPU s) "
                f"({big['update_pairs']} pairs; planted new-near-old recall {big['update_recall_old']:.4f}); "
                f"save {big.get('save_update_s', float('nan')):.1f} s (first full save "
                f"{big.get('save_full_s', float('nan')):.1f} s), load {big.get('load_s', float('nan')):.1f} s; "
                f"target < 60 s: {'met' if big['update_s'] + big.get('save_update_s', 0) < 60 else 'NOT met'}; "
                f"peak RSS of the whole process with the update and checks {big['peak_rss_all_mib']:.0f} MiB"
            )

    if "accuracy" not in skip:
        r = _child("accuracy", [work / "planted"])
        print(f"\n## accuracy on planted edits: {r['files']} files, {r['true_pairs']} true pairs")
        edits = sorted(next(iter(r["methods"].values()))["per_edit"])
        print(f"{'method':<34} {'recall':>7} {'precision':>9} {'false':>6}")
        for name, m in r["methods"].items():
            print(f"{name:<34} {m['recall']:>7.3f} {m['precision']:>9.3f} {m['false_pairs']:>6}")
        print("\nrecall of each edit against its original:")
        short = [name.split(" (")[0].replace("framediff ", "fd ").replace("imagehash ", "") for name in r["methods"]]
        print(f"{'edit':<16}" + "".join(f"{name:>15}" for name in short))
        for e in edits:
            print(f"{e:<16}" + "".join(f"{m['per_edit'][e]:>15.2f}" for m in r["methods"].values()))
    if "pixels" not in skip:
        sizes = [int(v) for v in args.pixels.split(",")]
        print("\n## pixels: duplicates mode against brute-force pairs mode, same options and thresholds "
              f"({PIXEL_PARAMS['thresholds']}, resize smallest, 2 workers)")  # fmt: skip
        last = None
        if any(args.pairs_up_to < n <= args.exact_up_to for n in sizes):
            v = validate_exact_reference(work, args.exact_validate)
            last = v
            print(f"exact reference checked on {v['n']} images: its {v['truth']} duplicate pairs are exactly "
                  f"brute-force pairs mode's ({v['pairs_s']:.1f} s) in {v['ref_s']:.2f} s, the bound leaving "
                  f"{v['within']} of {v['all_pairs']} pairs; duplicates the bound would cut: {v['cut']}")  # fmt: skip
        print(f"{'images':>7} {'measured':>9} {'all pairs':>10} {'dup s':>7} {'pairs s':>8} {'speed-up':>9} "
              f"{'dup pairs':>10} {'truth':>6} {'from':>5} {'ref s':>6} {'recall':>7} {'false':>6}")  # fmt: skip
        notes = []
        for n in sizes:
            truth = "pairs" if n <= args.pairs_up_to else "exact" if n <= args.exact_up_to else None
            r = bench_pixels(work, n, truth, check=n <= args.exact_check_up_to)
            every = r["n"] * (r["n"] - 1) // 2
            if "pairs_s" in r:
                last, pairs_s, mark = r, r["pairs_s"], ""
            else:  # n^2 from the largest brute-force run
                pairs_s, mark = (
                    (last["pairs_s"] * every / (last["n"] * (last["n"] - 1) / 2) if last else float("nan")),
                    "~",
                )
            ref_s = format(r["ref_s"], ".1f") if "ref_s" in r else "-"
            print(f"{r['n']:>7} {r['measured']:>9} {every:>10} {r['dup_s']:>7.1f} {mark + format(pairs_s, '.1f'):>8} "
                  f"{pairs_s / r['dup_s']:>9.1f} {r['found']:>10} {r.get('truth', '-'):>6} {truth or '-':>5} "
                  f"{ref_s:>6} {format(r['recall'], '.4f') if 'recall' in r else '-':>7} "
                  f"{r.get('false', '-'):>6}")  # fmt: skip
            if truth == "exact":
                cut = "not checked" if r["cut"] is None else f"{r['cut']} (every pair measured)"
                notes.append(f"{r['n']} images: the exact reference measured {r['ref_measured']} of {every} pairs "
                             f"({r['within']} within the bound); duplicates the bound would cut: {cut}")  # fmt: skip
            for kind in ("missed", "false"):
                if r.get(f"{kind}_examples"):
                    notes.append(f"{r['n']} images, {kind}: " + ", ".join(" ~ ".join(p) for p in r[f"{kind}_examples"]))
        print("(~ = brute force extrapolated by n^2 from the largest set it ran on; truth from pairs mode or the "
              "exact reference; target recall >= 0.99, false 0)")  # fmt: skip
        for line in notes:
            print(line)
    if args.candidates:
        sizes = [int(v) for v in args.candidates.split(",")]
        print("\n## pixels, larger sets: the index route's recall from its candidates, against the exact reference")
        print(f"{'images':>7} {'candidates':>11} {'all pairs':>10} {'search s':>9} {'truth':>7} {'ref s':>6} "
              f"{'recall':>7}  (target >= 0.99)")  # fmt: skip
        for n in sizes:
            r = bench_candidates(work, n)
            print(f"{r['n']:>7} {r['measured']:>11} {r['all_pairs']:>10} {r['search_s']:>9.1f} {r['truth']:>7} "
                  f"{r['ref_s']:>6.1f} {r['recall']:>7.4f}")  # fmt: skip
            if r["missed_examples"]:
                print(f"{r['n']} images, missed: " + ", ".join(" ~ ".join(p) for p in r["missed_examples"]))
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end (a shared machine: figures are indicative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
