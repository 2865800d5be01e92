"""kernels.lut: one-pass look-up tables on 8-bit images."""

import numpy as np
import pytest

from framediff.kernels.lut import apply_lut


def test_apply_lut_matches_fancy_indexing_on_strided_rows():
    rng = np.random.default_rng(3)
    padded = rng.integers(0, 256, (37, 64), dtype=np.uint8)
    image = padded[:, :50]  # rows of a padded plane: not contiguous
    lut = rng.integers(0, 256, 256, dtype=np.uint8)
    out = np.zeros((37, 50), np.uint8)
    assert apply_lut(image, lut, out=out) is out
    np.testing.assert_array_equal(out, lut[image])
    np.testing.assert_array_equal(apply_lut(image, lut), lut[image])


def test_apply_lut_refuses_other_types():
    lut = np.arange(256, dtype=np.uint8)
    with pytest.raises(ValueError, match="image must be 2-D uint8"):
        apply_lut(np.zeros((4, 4), np.uint16), lut)
    with pytest.raises(ValueError, match="lut must be uint8 of shape"):
        apply_lut(np.zeros((4, 4), np.uint8), lut[:10])
    with pytest.raises(ValueError, match="out must be uint8 of shape"):
        apply_lut(np.zeros((4, 4), np.uint8), lut, out=np.zeros((3, 4), np.uint8))
