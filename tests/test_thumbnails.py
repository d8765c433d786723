"""data/processed/thumbnails.h5: area-averaged 8-bit thumbnails, their file form, and how a crop finds its image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fpnpipe.data.thumbnails import Thumbnail, make_thumbnail, read_thumbnails, source_image_id, write_thumbnails


def test_thumbnail_is_the_block_mean_and_keeps_the_aspect_ratio() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((512, 384)).astype(np.float32)
    thumb = make_thumbnail(image, side=128)
    assert thumb.shape == (128, 96) and thumb.dtype == np.uint8
    block_mean = image.reshape(128, 4, 96, 4).mean(axis=(1, 3))
    assert np.abs(thumb.astype(float) - block_mean * 255).max() <= 0.5 + 1e-3
    small = rng.random((40, 30)).astype(np.float32)
    np.testing.assert_array_equal(make_thumbnail(small, side=128), np.round(small * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="must be"):
        make_thumbnail(np.zeros((0, 5)))


def test_file_round_trip_byte_stable(tmp_path: Path) -> None:
    thumbs = [Thumbnail("I-a", np.full((20, 16), 7, np.uint8), (200, 160), (0.1, 0.1)),
              Thumbnail("b/c", np.arange(12, dtype=np.uint8).reshape(3, 4), (30, 40), None)]
    write_thumbnails(tmp_path / "t.h5", thumbs, side=32)
    back = read_thumbnails(tmp_path / "t.h5")
    assert list(back) == ["I-a", "b/c"]
    for t in thumbs:
        np.testing.assert_array_equal(back[t.image_id].pixels, t.pixels)
        assert back[t.image_id].source_shape == t.source_shape
        assert back[t.image_id].pixel_spacing_mm == t.pixel_spacing_mm
    assert back["I-a"].scale == (0.1, 0.1)
    first = hashlib.sha256((tmp_path / "t.h5").read_bytes()).hexdigest()
    write_thumbnails(tmp_path / "t.h5", thumbs, side=32)
    assert hashlib.sha256((tmp_path / "t.h5").read_bytes()).hexdigest() == first
    with pytest.raises(ValueError, match="no such file"):
        read_thumbnails(tmp_path / "absent.h5")


def test_a_crop_finds_its_image() -> None:
    known = {"I-1", "I-2#x"}
    assert source_image_id("I-1", known) == "I-1"  # one lesion on the image: the crop has its id
    assert source_image_id("I-1#2", known) == "I-1"  # lesion 2 of a multi-lesion image
    assert source_image_id("I-1#neg3", known) == "I-1"  # a negative patch
    assert source_image_id("I-2#x", known) == "I-2#x"  # an id with '#' of its own
    assert source_image_id("I-3#1", known) is None
