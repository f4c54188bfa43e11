"""Figures: colorize's PNG encoder (:mod:`koalarization.pngfile`) against Pillow's own, the encoder
a kept library already gives (``Image.save(format="PNG", compress_level=1, compress_type=zlib.Z_RLE)``).

pngfile stays only while it is clearly faster (goal: at most 0.83 of Pillow's time, i.e. Pillow
more than 20% slower); both write lossless files, Pillow's smaller (it tries every PNG filter on
every row, which is where its time goes). Two photos of 1024x768, the size ``colorize`` is timed
at: skimage's astronaut enlarged, and a synthetic photo from :mod:`benchmarks.photos`. One thread,
then two threads side by side (colorize encodes in threads; both encoders release the GIL).
"""

import io
import threading
import time
import zlib

import numpy as np
import skimage.data
from PIL import Image

from benchmarks import figure
from benchmarks.photos import jpeg_bytes
from koalarization.pngfile import encode_png

PHOTO = (768, 1024)  # (height, width)
GOAL = 0.83  # pngfile's time over Pillow's: above it, Pillow's encoder should replace pngfile


def photos():
    """The two uint8 (768, 1024, 3) photos."""
    astronaut = Image.fromarray(skimage.data.astronaut()).resize(PHOTO[::-1], Image.BILINEAR)
    synthetic = Image.open(io.BytesIO(jpeg_bytes(np.random.default_rng(0), *PHOTO))).convert("RGB")
    return [np.asarray(astronaut), np.asarray(synthetic)]


def pillow_png(image, level=1, strategy=zlib.Z_RLE):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=level, compress_type=strategy)
    return buffer.getvalue()


ENCODERS = {
    "pngfile (Up filter, zlib 1, Z_RLE)": lambda image: encode_png(image, 1),
    "Pillow (compress_level=1, Z_RLE)": pillow_png,
    "Pillow (compress_level=1)": lambda image: pillow_png(image, 1, zlib.Z_DEFAULT_STRATEGY),
}


def _side_by_side(encode, image, threads):
    """Seconds for ``threads`` threads each encoding ``image`` once, started together."""
    workers = [threading.Thread(target=encode, args=(image,)) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def measure(rounds, threads):
    """{encoder: (best ms per photo, bytes per photo)}: the encoders called in turn, ``rounds`` times
    over both photos; a photo's time is the best round, a thread count's time is per photo."""
    images = photos()
    for image in images:  # every encoder is lossless
        for encode in ENCODERS.values():
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode(image)))), image)
    best = {name: [float("inf")] * len(images) for name in ENCODERS}
    for _ in range(rounds):
        for name, encode in ENCODERS.items():
            for i, image in enumerate(images):
                best[name][i] = min(best[name][i], _side_by_side(encode, image, threads) / threads)
    sizes = {name: np.mean([len(encode(image)) for image in images]) for name, encode in ENCODERS.items()}
    return {name: (1000 * float(np.mean(best[name])), float(sizes[name])) for name in ENCODERS}


def png_figures(sizes, log=print):
    rounds = 7 if sizes.rounds >= 2 else 3
    rows = []
    for key, threads in (("png_encoder", 1), ("png_encoder_threads", 2)):
        result = measure(rounds, threads)
        log(f"{key}: " + "; ".join(f"{name} {ms:.1f} ms {size / 1000:.0f} KB" for name, (ms, size) in result.items()))
        (ours, (ours_ms, ours_kb)), (pil, (pil_ms, pil_kb)), (default, (default_ms, default_kb)) = result.items()
        side = "one thread" if threads == 1 else "two threads side by side, time per photo"
        rows.append(figure(
            key, f"PNG encoder, 1024x768, {side}: pngfile vs Pillow",
            (f"{ours}, best of {rounds}", ours_ms, "ms"), (f"{pil}, best of {rounds}", pil_ms, "ms"),
            goal=("<=", GOAL),
            note=f"mean of 2 photos (astronaut enlarged, synthetic); sizes {ours_kb / 1000:.0f} KB vs "
            f"{pil_kb / 1000:.0f} KB; Pillow with zlib's default strategy {default_ms:.1f} ms, {default_kb / 1000:.0f} KB; "
            f"above {GOAL} Pillow's encoder should replace koalarization.pngfile",
        ))
    return rows
