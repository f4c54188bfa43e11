"""koalarization.pngfile: PNG bytes that Pillow and TensorFlow both decode to the same pixels, at every level.

Why a hand-written encoder is tested here at all: Pillow's own (compress_level=1, Z_RLE) takes twice
its time on a 1024x768 photo (46 ms vs 21 ms, benchmarks/results/png-encoder/full.md, figure
``png_encoder``); the benchmark, not a test, says when that stops being true.
"""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from koalarization import pngfile
from koalarization.pngfile import encode_png

LEVELS = range(10)


def _photo():
    return data.astronaut()  # a real photo, uint8 (512, 512, 3)


def _images():
    rng = np.random.default_rng(0)
    return {
        "photo": _photo()[100:260, 150:390],  # a crop, so that every level stays quick
        "noise": rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        "flat": np.full((20, 30, 3), (200, 17, 90), np.uint8),
        "1x1": np.array([[[1, 2, 255]]], np.uint8),
        "1x7": rng.integers(0, 256, (1, 7, 3), dtype=np.uint8),
        "7x1": rng.integers(0, 256, (7, 1, 3), dtype=np.uint8),
        "3x5": rng.integers(0, 256, (3, 5, 3), dtype=np.uint8),
    }


def _chunks(png):
    """[(type, payload)] of a PNG file, checking the signature, every length and every CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, payload = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert len(payload) == length and crc == zlib.crc32(kind + payload), kind
        chunks.append((kind, payload))
        at += 12 + length
    assert at == len(png)
    return chunks


def _decoded(png, channels=3):
    """(pixels by Pillow, pixels by TensorFlow), both uint8 (H, W, channels)."""
    with Image.open(io.BytesIO(png)) as image:
        pillow = np.asarray(image)
    pillow = pillow.reshape(pillow.shape[:2] + (channels,))
    return pillow, tf.io.decode_png(png, channels=channels).numpy()


@pytest.mark.parametrize("name", list(_images()))
def test_every_level_decodes_to_the_same_pixels(name):
    image = _images()[name]
    for level in LEVELS:
        png = encode_png(image, level)
        pillow, tensorflow = _decoded(png)
        np.testing.assert_array_equal(pillow, image, err_msg=f"{name} level {level}, Pillow")
        np.testing.assert_array_equal(tensorflow, image, err_msg=f"{name} level {level}, TensorFlow")


def test_higher_levels_are_never_bigger_than_level_1():
    rng = np.random.default_rng(2)
    smooth = np.linspace(0, 255, 60 * 80 * 3).reshape(60, 80, 3)
    for image in [*_images().values(), np.clip(smooth + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)]:
        sizes = [len(encode_png(image, level)) for level in LEVELS]
        assert max(sizes[2:]) <= sizes[1], sizes


def test_chunks_and_header():
    image = _images()["3x5"]
    chunks = _chunks(encode_png(image))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks[0][1] == struct.pack(">IIBBBBB", 5, 3, 8, 2, 0, 0, 0)  # width, height, 8-bit RGB, no interlace
    assert chunks[-1][1] == b""
    rows = np.frombuffer(zlib.decompress(chunks[1][1]), np.uint8).reshape(3, 1 + 5 * 3)
    assert (rows[:, 0] == 2).all()  # every row filtered "Up"


def test_big_data_is_split_into_several_idat_chunks(monkeypatch):
    monkeypatch.setattr(pngfile, "IDAT_BYTES", 1000)
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)  # 6 KB that do not compress
    for level in (0, 1):
        png = encode_png(image, level)
        kinds = [kind for kind, _ in _chunks(png)]
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"} and len(kinds) > 8
        for pixels in _decoded(png):
            np.testing.assert_array_equal(pixels, image)


def test_gray_rgba_tensors_and_views():
    photo = _images()["photo"]
    for image, channels in [(photo[..., 0], 1), (photo[..., :1], 1), (np.dstack([photo, photo[..., 1]]), 4)]:
        for pixels in _decoded(encode_png(image), channels):
            np.testing.assert_array_equal(pixels, image.reshape(pixels.shape))
    for image in [tf.constant(photo), photo[::-1, ::2], np.asfortranarray(photo)]:  # tensors, strided views
        for pixels in _decoded(encode_png(image)):
            np.testing.assert_array_equal(pixels, np.asarray(image))


def test_sizes_on_a_real_photo():
    photo = _photo()
    stored, fast, smallest = (len(encode_png(photo, level)) for level in (0, 1, 9))
    assert stored > photo.size  # level 0 stores: the pixels and a filter byte a row
    assert smallest <= fast < stored  # level 9 keeps level 1's stream where that is smaller (as here)
    tensorflow = len(tf.io.encode_png(photo, compression=1).numpy())
    assert fast <= 1.25 * tensorflow, (fast, tensorflow)  # a user would notice files much bigger


@pytest.mark.parametrize(
    "image, problem",
    [
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 3), np.uint16), "uint8"),
        (np.zeros((4, 4, 5), np.uint8), r"shape \(4, 4, 5\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"shape \(2, 4, 4, 3\)"),
        (np.zeros((4,), np.uint8), r"shape \(4,\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
    ],
)
def test_bad_images_raise_value_error_naming_the_problem(image, problem):
    with pytest.raises(ValueError, match=problem):
        encode_png(image)


@pytest.mark.parametrize("level", [-1, 10, 1.5, None, True])
def test_bad_levels_raise_value_error(level):
    with pytest.raises(ValueError, match="level"):
        encode_png(np.zeros((2, 2, 3), np.uint8), level)
