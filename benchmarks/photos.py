"""Synthetic test photos for the benchmarks (numpy + Pillow only): smooth colours plus texture."""

import io
import os

import numpy as np
from PIL import Image


def synthetic_photos(rng, count, height, width):
    """Smooth colour pictures, float32 sRGB in [0, 1] (count, H, W, 3): two gradients and a blob."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    photos = []
    for _ in range(count):
        c0, c1, c2 = rng.random((3, 3))
        img = c0 * (1 - x[..., None]) + c1 * x[..., None]
        blob = np.exp(-(((y - rng.random()) ** 2 + (x - rng.random()) ** 2) / 0.05))[..., None]
        photos.append(img * (1 - blob) + c2 * blob)
    return np.asarray(photos, np.float32)


def jpeg_bytes(rng, height, width, quality=90):
    """One synthetic photo with some texture (so it compresses like a photo), as JPEG bytes.

    Drawn small and enlarged by Pillow, so a 6000x4000 photo costs little memory to make.
    """
    small = synthetic_photos(rng, 1, min(height, 256), min(width, 256))[0]
    small = np.clip(small + rng.normal(0, 0.04, small.shape), 0, 1)
    image = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_jpegs(folder, count, height=375, width=500, seed=0):
    """``count`` JPEG files ``photo-NNNNN.jpg`` in ``folder`` (the size of an average ImageNet photo)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        with open(os.path.join(folder, f"photo-{i:05d}.jpg"), "wb") as f:
            f.write(jpeg_bytes(rng, height, width))
    return folder
