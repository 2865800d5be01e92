"""Sparse optical flow: Shi-Tomasi corners and pyramidal Lucas-Kanade.

Oracles: a photograph from ``skimage.data`` moved by a known sub-pixel translation
(``scipy.ndimage.shift``, cubic spline) or a known rotation about its centre
(``scipy.ndimage.affine_transform``), whose true flow is known at every point; and
OpenCV's ``cv2.goodFeaturesToTrack`` / ``cv2.calcOpticalFlowPyrLK`` on the same
uint8 images and points.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from numpy.testing import assert_allclose, assert_array_equal
from skimage import data

from framediff.kernels import gpu_available, to_numpy
from framediff.kernels.flow import FLOW_STATS, flow_stats, good_features_to_track, lucas_kanade

CAMERA = data.camera().astype(np.float64)  # (512, 512)
SHIFT = (1.3, -2.7)  # (dy, dx) in pixels
ANGLE_DEG = 2.0
LK = dict(win_size=21, max_level=3, iterations=20, epsilon=0.01)
CV_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.01)


def _u8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@functools.cache
def _translated_pair():
    moved = ndi.shift(CAMERA, SHIFT, order=3, mode="reflect")
    crop = slice(16, -16)  # keep away from the borders the shift filled in
    return _u8(CAMERA[crop, crop]), _u8(moved[crop, crop])


@functools.cache
def _rotated_pair():
    """prev, next and R, centre such that a point p of prev is at R (p - c) + c in next."""
    theta = np.deg2rad(ANGLE_DEG)
    rot_xy = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = rot_xy.T
    matrix = inv[::-1, ::-1]  # the same inverse map in (row, col) order
    centre_rc = (np.array(CAMERA.shape) - 1) / 2.0
    offset = centre_rc - matrix @ centre_rc
    rotated = ndi.affine_transform(CAMERA, matrix, offset=offset, order=3, mode="reflect")
    return _u8(CAMERA), _u8(rotated), rot_xy, centre_rc[::-1].copy()


def _cv_track(prev, next_, points):
    new, status, _ = cv2.calcOpticalFlowPyrLK(
        prev,
        next_,
        points.astype(np.float32).reshape(-1, 1, 2),
        None,
        winSize=(LK["win_size"], LK["win_size"]),
        maxLevel=LK["max_level"],
        criteria=CV_CRITERIA,
    )
    return new.reshape(-1, 2).astype(np.float64), status.ravel().astype(bool)


# ------------------------------------------------------------------ good features


def test_good_features_match_opencv():
    prev, _ = _translated_pair()
    ours = good_features_to_track(prev, max_corners=500, quality_level=0.01, min_distance=7, block_size=7)
    theirs = cv2.goodFeaturesToTrack(prev, 500, 0.01, 7, blockSize=7).reshape(-1, 2)
    assert ours.shape == theirs.shape == (500, 2)
    common = {tuple(p) for p in ours.astype(int).tolist()} & {tuple(p) for p in theirs.astype(int).tolist()}
    assert len(common) >= 0.98 * len(theirs)
    assert_array_equal(ours[:20], theirs[:20])  # the strongest corners, in the same order


def test_good_features_options():
    prev, _ = _translated_pair()
    pts = good_features_to_track(prev, max_corners=50, min_distance=20)
    assert pts.shape == (50, 2) and pts.dtype == np.float64
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(50) * 1e9
    assert d.min() >= 20
    unlimited = good_features_to_track(prev, max_corners=0, min_distance=0)
    assert unlimited.shape[0] > 500
    assert good_features_to_track(np.full((40, 40), 7.0)).shape == (0, 2)  # no corner anywhere
    assert good_features_to_track(np.zeros((2, 2))).shape == (0, 2)


def test_good_features_find_the_corners_of_a_square():
    image = np.zeros((64, 64))
    image[16:48, 16:48] = 1.0
    pts = good_features_to_track(image, max_corners=4, min_distance=10, block_size=3)
    corners = {(16, 16), (16, 47), (47, 16), (47, 47)}
    found = {(int(x), int(y)) for x, y in pts}
    assert all(min(abs(x - cx) + abs(y - cy) for cx, cy in corners) <= 2 for x, y in found)


# ------------------------------------------------------------------ Lucas-Kanade


def test_translation_matches_truth_and_opencv():
    prev, next_ = _translated_pair()
    pts = good_features_to_track(prev)
    new, status = lucas_kanade(prev, next_, pts, **LK)
    assert status.mean() > 0.95
    truth = np.array([SHIFT[1], SHIFT[0]])  # (dx, dy)
    flow = (new - pts)[status]
    assert_allclose(np.median(flow, axis=0), truth, atol=0.1)

    cv_new, cv_status = _cv_track(prev, next_, pts)
    assert (cv_status == status).mean() > 0.98
    both = cv_status & status
    assert_allclose(np.median(flow, axis=0), np.median((cv_new - pts)[cv_status], axis=0), atol=0.1)
    # Point by point the two implementations agree to a hundredth of a pixel.
    assert np.median(np.linalg.norm(new[both] - cv_new[both], axis=1)) < 0.01


def test_rotation_matches_analytic_field_and_opencv():
    prev, next_, rot, centre = _rotated_pair()
    pts = good_features_to_track(prev)
    inner = np.all((pts > 40) & (pts < np.array(prev.shape[::-1]) - 40), axis=1)
    pts = pts[inner]
    new, status = lucas_kanade(prev, next_, pts, **LK)
    assert status.mean() > 0.95
    truth = (pts - centre) @ rot.T + centre
    error = np.linalg.norm(new - truth, axis=1)[status]
    assert np.median(error) < 0.2

    cv_new, cv_status = _cv_track(prev, next_, pts)
    both = cv_status & status
    cv_error = np.linalg.norm(cv_new - truth, axis=1)[cv_status]
    assert abs(np.median(error) - np.median(cv_error)) < 0.05
    assert np.median(np.linalg.norm(new[both] - cv_new[both], axis=1)) < 0.01


def test_pyramid_tracks_large_motion():
    moved = _u8(ndi.shift(CAMERA, (9.0, 11.0), order=1, mode="reflect"))[32:-32, 32:-32]
    prev = _u8(CAMERA)[32:-32, 32:-32]
    pts = good_features_to_track(prev, max_corners=100)
    new, status = lucas_kanade(prev, moved, pts, max_level=3)
    assert_allclose(np.median((new - pts)[status], axis=0), [11.0, 9.0], atol=0.1)
    flat, _ = lucas_kanade(prev, moved, pts, max_level=0)
    assert np.median(np.linalg.norm(flat - pts - [11.0, 9.0], axis=1)) > 1.0  # beyond one level's reach


def test_identical_images_and_edge_cases():
    prev, _ = _translated_pair()
    pts = good_features_to_track(prev, max_corners=50)
    new, status = lucas_kanade(prev, prev, pts)
    assert status.all()
    assert_allclose(new, pts, atol=1e-6)
    empty, st = lucas_kanade(prev, prev, np.zeros((0, 2)))
    assert empty.shape == (0, 2) and st.shape == (0,)
    # A flat window has no gradient: the point is lost, as in OpenCV.
    flat = np.full((64, 64), 100, dtype=np.uint8)
    _, st = lucas_kanade(flat, flat, np.array([[32.0, 32.0]]))
    assert not st[0]
    # Far outside the image: lost.
    _, st = lucas_kanade(prev, prev, np.array([[-500.0, 10.0]]))
    assert not st[0]


# ------------------------------------------------------------------ flow_stats


def test_flow_stats_translation_and_static():
    prev, next_ = _translated_pair()
    stats = flow_stats(prev, next_, moving_threshold=0.5)
    assert tuple(stats) == FLOW_STATS
    assert abs(float(stats["flow_median"]) - np.hypot(*SHIFT)) < 0.1
    assert float(stats["flow_moving_fraction"]) > 0.95
    assert 450 <= int(stats["flow_points"]) <= 500
    assert float(stats["flow_max"]) >= float(stats["flow_median"])

    still = flow_stats(prev, prev)
    assert float(still["flow_median"]) < 1e-6 and float(still["flow_moving_fraction"]) == 0.0


def test_flow_stats_batch_and_no_points():
    prev, next_ = _translated_pair()
    flat = np.full_like(prev, 90)
    batch = flow_stats(np.stack([prev, flat]), np.stack([next_, flat]), max_corners=100)
    assert batch["flow_median"].shape == (2,) and batch["flow_points"].dtype == np.int64
    single = flow_stats(prev, next_, max_corners=100)
    assert float(batch["flow_median"][0]) == float(single["flow_median"])
    assert batch["flow_points"][1] == 0
    assert np.isnan(batch["flow_median"][1]) and np.isnan(batch["flow_moving_fraction"][1])


def test_errors():
    img = np.zeros((32, 32))
    pts = np.zeros((3, 2))
    with pytest.raises(ValueError, match="2-D"):
        good_features_to_track(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="quality_level"):
        good_features_to_track(img, quality_level=0)
    with pytest.raises(ValueError, match="max_corners"):
        good_features_to_track(img, max_corners=-1)
    with pytest.raises(ValueError, match="min_distance"):
        good_features_to_track(img, min_distance=-1)
    with pytest.raises(ValueError, match="block_size"):
        good_features_to_track(img, block_size=0)
    with pytest.raises(ValueError, match="differ in shape"):
        lucas_kanade(img, np.zeros((32, 31)), pts)
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        lucas_kanade(img, img, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="win_size"):
        lucas_kanade(img, img, pts, win_size=1)
    with pytest.raises(ValueError, match="max_level"):
        lucas_kanade(img, img, pts, max_level=-1)
    with pytest.raises(ValueError, match="iterations"):
        lucas_kanade(img, img, pts, iterations=0)
    with pytest.raises(ValueError, match="epsilon"):
        lucas_kanade(img, img, pts, epsilon=-1)
    with pytest.raises(ValueError, match="differ in shape"):
        flow_stats(img, np.zeros((32, 31)))
    with pytest.raises(ValueError, match="shape"):
        flow_stats(np.zeros(5), np.zeros(5))


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_matches_numpy():
    import cupy

    prev, next_ = _translated_pair()
    pts = good_features_to_track(prev)
    g_pts = to_numpy(good_features_to_track(cupy.asarray(prev)))
    # Responses agree to rounding; a near-tie may swap a corner or two.
    common = {tuple(p) for p in g_pts.tolist()} & {tuple(p) for p in pts.tolist()}
    assert len(common) >= 0.99 * len(pts)
    new, status = lucas_kanade(prev, next_, pts)
    g_new, g_status = lucas_kanade(cupy.asarray(prev), cupy.asarray(next_), cupy.asarray(pts))
    assert (to_numpy(g_status) == status).mean() > 0.99
    both = to_numpy(g_status) & status
    assert_allclose(to_numpy(g_new)[both], new[both], atol=1e-6)
    stats = flow_stats(prev, next_)
    g_stats = flow_stats(cupy.asarray(prev), cupy.asarray(next_))
    assert abs(int(g_stats["flow_points"]) - int(stats["flow_points"])) <= 5
    assert_allclose(to_numpy(g_stats["flow_median"]), stats["flow_median"], atol=1e-3)
