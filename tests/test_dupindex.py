"""Near-duplicate index (``framediff.dupindex``) on planted duplicates of real photographs.

Truth: every file written from one original is one group (``framediff.planted``);
brute force: all pairs' distances computed with NumPy; keepers: sizes read back with
Pillow and ``os.path.getsize``. The GPU's search (k-NN searches widened until they hold
every neighbour in the radius) is checked on CPU indexes against FAISS's own range search.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("faiss", reason="the near-duplicate index needs faiss-cpu")

import faiss

import framediff.dupindex as dupindex
from framediff.dupindex import (
    DEFAULT_LEVEL_RADIUS,
    DEFAULT_RADIUS,
    KNN_START,
    DuplicateIndex,
    confirmation_pairs,
    duplicate_groups,
    gpu_faiss_available,
    range_search_by_knn,
    search_device,
)
from framediff.errors import FramediffError
from framediff.modes import Inputs, get_mode
from framediff.planted import PHOTOS, make_planted, photo
from framediff.thumbnails import SignatureParams, Signatures, signatures_of

#: Photographs whose every planted edit stays within the default radius (textures such
#: as brick or grass change completely under a 2-degree rotation; see the benchmark).
STABLE = ("astronaut", "camera", "chelsea", "clock", "coffee", "coins", "immunohistochemistry", "logo",
          "page", "retina", "rocket", "cell")  # fmt: skip


def _photo(name):
    """A photograph, its centre cut to 512 x 512 at most: the tests stay quick."""
    image = photo(name)
    h, w = image.shape[:2]
    y, x = max(0, (h - 512) // 2), max(0, (w - 512) // 2)
    return image[y : y + 512, x : x + 512]


@pytest.fixture(scope="module")
def stable(tmp_path_factory):
    return make_planted(tmp_path_factory.mktemp("stable"), [_photo(n) for n in STABLE])


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """Every photograph, plus windows of them: a few hundred images, some alike."""
    rng = np.random.default_rng(1)
    windows = []
    for name in PHOTOS:
        image = _photo(name)
        h, w = image.shape[:2]
        for _ in range(4):
            y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
            windows.append(image[y : y + h // 2, x : x + w // 2])
    planted = make_planted(tmp_path_factory.mktemp("all"), [_photo(n) for n in PHOTOS])
    extra = make_planted(tmp_path_factory.mktemp("windows"), windows, edits=("half-size", "jpeg-q30"))
    return planted.paths + extra.paths


def _index(paths, **kw):
    index = DuplicateIndex(**kw)
    index.add(signatures_of(paths, known=index.known))
    return index


def _brute_force(signatures, radius=DEFAULT_RADIUS, level_radius=DEFAULT_LEVEL_RADIUS):
    """Every pair near in either vector, by the full distance matrices."""

    def d2(v):
        v = v.astype(np.float64)
        return ((v[:, None] - v[None]) ** 2).sum(-1)

    near = (d2(signatures.vectors) <= radius) | (d2(signatures.levels) <= level_radius)
    ok = signatures.ok
    a, b = np.nonzero(np.triu(near, 1) & ok[:, None] & ok[None])
    return {(int(i), int(j)) for i, j in zip(a, b)}


def _bytes(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _as_set(pairs):
    return {(int(a), int(b)) for a, b in pairs}


@pytest.mark.slow
def test_planted_groups_found_exactly_with_their_keepers(stable):
    index = _index(stable.paths)
    pairs = np.concatenate([index.search(), index.exact_pairs()])
    groups = duplicate_groups(index.signatures, pairs).to_pydict()
    assert sorted(set(groups["group"])) == list(range(len(STABLE)))
    for path, group in zip(groups["path"], groups["group"]):
        assert stable.group[stable.paths.index(path)] == group  # numbered like the originals
    assert len(groups["path"]) == len(stable.paths)  # every planted file, no other

    def pixels_then_bytes(path):
        with Image.open(path) as im:
            return (-im.size[0] * im.size[1], -os.path.getsize(path), path)

    for g in range(len(STABLE)):
        members = [p for p, gg in zip(groups["path"], groups["group"]) if gg == g]
        keepers = [p for p, gg, k in zip(groups["path"], groups["group"], groups["keeper"]) if gg == g and k]
        assert keepers == [min(members, key=pixels_then_bytes)]
        by_name = duplicate_groups(index.signatures, pairs, keep_rule="name").to_pydict()
        assert [p for p, gg, k in zip(*(by_name[c] for c in ("path", "group", "keeper"))) if gg == g and k] == [
            min(members)
        ]


@pytest.mark.slow
def test_keep_rule_file_size_and_unknown_rule(stable):
    index = _index(stable.paths[:13])
    pairs = index.search()
    table = duplicate_groups(index.signatures, pairs, keep_rule="FILE-SIZE").to_pydict()
    keeper = [p for p, k in zip(table["path"], table["keeper"]) if k]
    assert keeper == [max(table["path"], key=lambda p: (os.path.getsize(p), -len(p)))]
    with pytest.raises(ValueError, match="unknown keep rule 'newest'"):
        duplicate_groups(index.signatures, pairs, keep_rule="newest")


@pytest.mark.slow
def test_index_search_equals_brute_force(everything):
    index = _index(everything)
    assert index.kind == "flat"
    truth = _brute_force(index.signatures)
    assert len(truth) > len(everything) // 2  # planted groups and look-alike windows
    assert _as_set(index.search()) == truth


@pytest.mark.slow
def test_inverted_file_keeps_recall_of_brute_force(everything):
    index = _index(everything, ivf_from=100, nprobe=16)
    assert index.kind == "ivf"
    truth = _brute_force(index.signatures)
    found = _as_set(index.search())
    assert found <= truth  # every pair is checked exactly: never a false one
    assert len(found & truth) >= 0.99 * len(truth)


@pytest.mark.slow
def test_incremental_update_equals_from_scratch(everything, tmp_path):
    scratch = _index(everything)
    expected_near, expected_exact = _as_set(scratch.search()), _as_set(scratch.exact_pairs())
    folder = tmp_path / "index"
    near, exact = set(), set()
    for batch in np.array_split(np.arange(len(everything)), 3):
        index = DuplicateIndex.load(folder) if folder.exists() else DuplicateIndex()
        rows, candidates, identical = index.update(signatures_of([everything[k] for k in batch], known=index.known))
        assert rows.tolist() == batch.tolist()
        assert all(a in rows or b in rows for a, b in candidates)  # only new against all
        near |= _as_set(candidates)
        exact |= _as_set(identical)
        index.save(folder)
    assert near == expected_near and exact == expected_exact
    reloaded = DuplicateIndex.load(folder)
    assert reloaded.signatures.paths == scratch.signatures.paths
    np.testing.assert_array_equal(reloaded.signatures.vectors, scratch.signatures.vectors)
    np.testing.assert_array_equal(reloaded.signatures.levels, scratch.signatures.levels)
    assert _as_set(reloaded.search()) == expected_near
    assert sorted(p.name for p in folder.iterdir()) == [
        "index-00003.faiss", "levels-00003.faiss", "manifest.json", *(f"signatures-{k:05d}.parquet" for k in range(3))
    ]  # fmt: skip


def test_exact_duplicates_are_not_decoded(stable, tmp_path):
    copies = []
    for k, path in enumerate(stable.paths[:5]):
        for c in range(3):
            copies.append(tmp_path / f"copy{k}-{c}{os.path.splitext(path)[1]}")
            shutil.copyfile(path, copies[-1])
    s = signatures_of(copies)
    contents = [_bytes(p) for p in stable.paths[:5]]
    assert len(set(contents)) == 4  # the original and its planted exact copy, then 3 others
    assert s.decoded.sum() == 4  # one decode per distinct content
    assert (s.vectors[0::3] == s.vectors[1::3]).all() and s.ok.all()

    index = _index(stable.paths[:13])
    again = signatures_of(copies, known=index.known)
    assert again.decoded.sum() == 0  # the index already holds every one of these contents
    rows, _near, exact = index.update(again)
    first = {}
    for row, path in enumerate([*stable.paths[:13], *map(str, copies)]):
        first.setdefault(_bytes(path), row)
    expected = {(first[_bytes(p)], int(r)) for p, r in zip(copies, rows)}
    assert _as_set(exact) == expected


def test_unreadable_files_are_rows_not_errors(stable, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(_bytes(stable.paths[0])[:300])
    paths = [stable.paths[0], str(tmp_path / "missing.png"), str(broken), stable.paths[2]]
    s = signatures_of(paths)
    assert s.status.tolist() == ["ok", "missing", "truncated", "ok"]
    assert s.error[1] == "no such file" and s.error[2]
    index = DuplicateIndex()
    index.add(s)
    assert _as_set(index.search()) == {(0, 3)}  # the unreadable ones pair with nothing


def test_damaged_index_is_refused_in_one_line(stable, tmp_path):
    index = _index(stable.paths[:13])
    index.save(tmp_path)
    with pytest.raises(FramediffError, match=r"no duplicate index here"):
        DuplicateIndex.load(tmp_path / "elsewhere")
    with pytest.raises(FramediffError, match=r"built with SignatureParams"):
        DuplicateIndex.load(tmp_path, params=SignatureParams(grid=16))
    with pytest.raises(FramediffError, match=r"holds another duplicate index \(13 images\)"):
        _index(stable.paths[:3]).save(tmp_path)
    part = tmp_path / "signatures-00000.parquet"
    part.write_bytes(part.read_bytes()[:-1] + b"\0")
    with pytest.raises(FramediffError, match=r"signatures-00000.parquet: checksum differs"):
        DuplicateIndex.load(tmp_path)


def test_index_of_an_earlier_version_is_refused_with_the_reason(stable, tmp_path):
    _index(stable.paths[:3]).save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FramediffError, match=r"earlier framediff \(version 1, without the block levels"):
        DuplicateIndex.load(tmp_path)
    manifest["version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FramediffError, match=r"not a version 2 duplicate-index manifest"):
        DuplicateIndex.load(tmp_path)


def test_signatures_of_another_dimension_are_refused():
    with pytest.raises(ValueError, match="64 dimensions, the index 256"):
        DuplicateIndex(SignatureParams(grid=16)).add(Signatures.empty(SignatureParams()))


def test_confirmation_pairs_feed_pairs_mode(stable):
    index = _index(stable.paths[:26])
    near, exact = index.search(), index.exact_pairs()
    pairs = confirmation_pairs(near, exact=exact)
    assert pairs == sorted(pairs) and all(a < b for a, b in pairs)
    assert not set(pairs) & _as_set(exact) and set(pairs) == _as_set(near) - _as_set(exact)
    paths = tuple(index.signatures.paths)
    chunks = list(get_mode("pairs").plan(Inputs(paths, paths, pairs=pairs), 4))
    assert sorted((a, b) for c in chunks for _, a, b in c.pairs) == pairs

    # the scan lists the images in reverse: rows map to other positions
    n = len(index)
    moved = confirmation_pairs(near, positions=np.arange(n)[::-1])
    assert moved == sorted((n - 1 - b, n - 1 - a) for a, b in near.tolist())
    with pytest.raises(ValueError, match="not among the scanned inputs"):
        confirmation_pairs(near, positions=np.full(n, -1))


_SAVER = """
import sys
import numpy as np
from framediff.dupindex import DuplicateIndex
from framediff.thumbnails import signatures_of
folder, paths = sys.argv[1], sys.argv[2:]
sigs = [signatures_of(list(p)) for p in np.array_split(np.array(paths), 12)]
index = DuplicateIndex()
for batch in sigs:
    index.update(batch)
    index.save(folder)
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_index_killed_while_saving_resumes_to_the_same_result(stable, tmp_path, delay):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "index"
    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(folder), *stable.paths])
    try:
        deadline = time.monotonic() + 120
        while not (folder / "manifest.json").exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    index = DuplicateIndex.load(folder)  # checksums hold: a whole generation, never half of one
    done = len(index)
    assert 0 < done <= len(stable.paths)
    assert index.signatures.paths == stable.paths[:done]
    near = _as_set(index.search())
    if done < len(stable.paths):
        _rows, more, _exact = index.update(signatures_of(stable.paths[done:]))
        near |= _as_set(more)
        index.save(folder)
    assert near == _as_set(_index(stable.paths).search())
    assert not [p.name for p in folder.iterdir() if "tmp-" in p.name]


# ------------------------------------------------ the GPU's search, tested on the CPU
#
# FAISS's GPU indexes have no range search: there the search is a k-NN search widened
# until each query's farthest neighbour lies outside the radius. The strategy works on
# any index, so it is checked here against FAISS's own range search on CPU indexes.


def _planted_vectors(seed=3):
    """Unit 64-d vectors, as block-mean vectors are: a dense cluster of 150 (more than
    four times ``KNN_START``), one of 40, one of 3 and 30 singles. Squared distances are
    about 0.01 within a cluster and about 2 between: none lies near the radius, so both
    searches must find exactly the same neighbours."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(33, 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = [150, 40, 3] + [1] * 30
    x = np.concatenate([c + 0.01 * rng.normal(size=(n, 64)) for c, n in zip(centres, sizes)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x[rng.permutation(len(x))].astype(np.float32)  # clusters spread over the rows
    d2 = ((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    assert not ((d2 > 0.05) & (d2 < 1.0)).any()  # the margin the docstring promises
    return x


def _faiss_index(kind, x):
    if kind == "flat":
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
    elif kind == "id-map":  # as DuplicateIndex keeps a flat index: ids are rows, not positions
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(x.shape[1]))
        index.add_with_ids(x, np.arange(len(x), dtype=np.int64) * 7 + 5)
    else:
        index = faiss.index_factory(x.shape[1], "IVF8,Flat")
        index.train(x)
        index.nprobe = 2
        index.add_with_ids(x, np.arange(len(x), dtype=np.int64) * 7 + 5)
    return index


def _hits(lims, ids) -> set:
    return {(q, int(i)) for q in range(len(lims) - 1) for i in ids[lims[q] : lims[q + 1]]}


@pytest.mark.parametrize("kind", ["flat", "id-map", "ivf"])
def test_knn_range_search_equals_range_search(kind):
    x = _planted_vectors()
    index = _faiss_index(kind, x)
    lims, dist, ids = index.range_search(x, DEFAULT_RADIUS)
    got_lims, got_dist, got_ids = range_search_by_knn(index, x, DEFAULT_RADIUS)
    # The dense cluster's rows have more neighbours than k doubled once (an inverted file
    # splits the cluster over its lists): one k-NN search without the widening misses them.
    assert np.diff(lims).max() > 2 * KNN_START
    assert _hits(got_lims, got_ids) == _hits(lims, ids)
    assert got_lims.dtype == np.int64 and got_lims[-1] == len(got_ids) == len(got_dist)
    want = {
        (q, int(i)): d for q in range(len(x)) for i, d in zip(ids[lims[q] : lims[q + 1]], dist[lims[q] : lims[q + 1]])
    }
    got = [want[(q, int(i))] for q in range(len(x)) for i in got_ids[got_lims[q] : got_lims[q + 1]]]
    np.testing.assert_allclose(got_dist, got, atol=1e-5)


def test_knn_range_search_falls_back_to_a_range_search_past_max_k():
    x = _planted_vectors()
    index = _faiss_index("id-map", x)
    lims, _dist, ids = index.range_search(x, DEFAULT_RADIUS)
    asked = []

    def fallback(queries, radius):
        asked.append(len(queries))
        return index.range_search(queries, radius)

    got_lims, _got_dist, got_ids = range_search_by_knn(index, x, DEFAULT_RADIUS, k=8, max_k=64, fallback=fallback)
    assert _hits(got_lims, got_ids) == _hits(lims, ids)
    assert asked == [150]  # only the dense cluster's rows outgrow k = 64, in one call


def test_knn_range_search_on_empty_inputs_and_bad_arguments():
    x = _planted_vectors()[:5]
    empty = faiss.IndexFlatL2(64)
    lims, dist, ids = range_search_by_knn(empty, x, DEFAULT_RADIUS)
    assert lims.tolist() == [0] * 6 and len(dist) == len(ids) == 0
    full = _faiss_index("flat", x)
    lims, _dist, ids = range_search_by_knn(full, x[:0], DEFAULT_RADIUS)
    assert lims.tolist() == [0] and len(ids) == 0
    lims, _dist, ids = range_search_by_knn(full, x, 10.0, k=2)  # k grows to the whole index, no further
    assert np.diff(lims).tolist() == [5] * 5 and _hits(lims, ids) == {(q, i) for q in range(5) for i in range(5)}
    with pytest.raises(ValueError, match="max_k needs a fallback"):
        range_search_by_knn(full, x, DEFAULT_RADIUS, max_k=4)
    with pytest.raises(ValueError, match="must be positive"):
        range_search_by_knn(full, x, DEFAULT_RADIUS, k=0)


def _vector_signatures(x) -> Signatures:
    """Signatures that are only vectors (no files): rows of an index to search."""
    n = len(x)
    return Signatures(
        [f"v{k}" for k in range(n)], np.zeros(n, "V16"), np.full(n, -1, np.int64), np.zeros(n, np.int64),
        np.zeros(n, np.int64), np.full(n, "ok", "U16"), [""] * n, np.zeros(n, bool), x,
        # Levels unlike the vectors (reversed, halved): each search has its own index.
        np.ascontiguousarray(x[:, ::-1] / 2), np.zeros((n, 8), np.uint8),
    )  # fmt: skip


@pytest.mark.parametrize("ivf_from", [10**9, 100])
def test_search_on_the_gpu_path_finds_the_pairs_of_the_cpu_search(monkeypatch, ivf_from):
    """The GPU branch of ``DuplicateIndex.search`` with the CPU index standing in for
    its GPU copy, and a small largest k so the fallback range search runs too."""
    x = _planted_vectors()
    index = DuplicateIndex(ivf_from=ivf_from, nprobe=4)
    index.add(_vector_signatures(x))
    assert index.kind == ("ivf" if ivf_from == 100 else "flat")
    cpu = _as_set(index.search())
    if index.kind == "flat":  # an inverted file misses what its probed lists lack, on both paths
        assert cpu == _brute_force(index.signatures)
    monkeypatch.setattr(dupindex, "gpu_faiss_available", lambda: True)
    monkeypatch.setattr(dupindex, "_on_gpu", lambda index: index)
    monkeypatch.setattr(dupindex, "GPU_MAX_K", 64)
    assert _as_set(index.search(device="gpu")) == cpu
    rows = np.arange(0, len(x), 3)  # an update's query rows only
    assert _as_set(index.search(rows, device="gpu")) == _as_set(index.search(rows))


def test_search_on_the_gpu_without_gpu_faiss_falls_back_with_a_note():
    if gpu_faiss_available():
        pytest.skip("this FAISS searches on a GPU: nothing to fall back from")
    device, note = search_device("gpu")
    assert device == "cpu" and "faiss-gpu" in note
    assert search_device("cpu") == ("cpu", None)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        search_device("tpu")
    index = DuplicateIndex()
    index.add(_vector_signatures(_planted_vectors()[:10]))
    with pytest.raises(FramediffError, match="needs FAISS with GPU support"):
        index.search(device="gpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        index.search(device="tpu")


def test_signature_descriptors_are_computed_with_the_namespace_handed_down(stable):
    """``xp`` reaches the descriptor kernels (CuPy on a GPU run); the thumbnails come
    from the host, so both paths start from the same numbers."""

    class Recording:
        """NumPy under another name, remembering what was asked of it."""

        def __init__(self):
            self.used = set()

        def __getattr__(self, name):
            self.used.add(name)
            return getattr(np, name)

    xp = Recording()
    paths = stable.paths[:6]
    via, plain = signatures_of(paths, xp=xp), signatures_of(paths)
    assert {"asarray", "median", "packbits", "sqrt", "where"} <= xp.used
    np.testing.assert_array_equal(via.vectors, plain.vectors)
    np.testing.assert_array_equal(via.codes, plain.codes)
