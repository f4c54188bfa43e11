"""PNG files from numpy, faster than TensorFlow's encoder: what ``colorize`` writes.

    from koalarization.pngfile import encode_png
    data = encode_png(rgb)                         # uint8 (H, W, 3) -> PNG file bytes, zlib level 1

``tf.io.encode_png(image, compression=1)`` spends much of its time in libpng choosing a filter for
every row. Here every row gets the PNG "Up" filter (the row minus the row above, one numpy
subtraction) and zlib compresses the result; zlib releases the GIL, so encoder threads run side by
side. On one CPU core, a 1024x768 photo (skimage's astronaut, enlarged):

    tf.io.encode_png, compression=1     37 ms   1008 KB
    encode_png, level=0 (stored)         2 ms   2360 KB
    encode_png, level=1 (Z_RLE)         18 ms   1079 KB
    encode_png, level=6                220 ms    989 KB
    encode_png, level=9                660 ms    977 KB

Level 1 is zlib level 1 with the run-length strategy (``Z_RLE``): faster than level 1's usual
matching and smaller. Huffman coding alone was a few ms faster but 13% bigger than TensorFlow's file.
Levels 2 to 9 are zlib's levels with its default strategy, but never bigger than level 1: they also
compress as level 1 does (18 ms more) and keep the smaller stream. Z_RLE often wins on photos with a
little noise: skimage's astronaut at its own 512x512 is 441 KB at level 1, 457 KB at zlib's level 9.
Any level is lossless: only the time and the size change.

Why not Pillow's encoder (``Image.save(format="PNG", compress_level=1, compress_type=zlib.Z_RLE)``,
C, releases the GIL)? It tries all five PNG filters on every row: smaller files, twice the time.
``python -m benchmarks --only png_encoder,png_encoder_threads`` (benchmarks/results/png-encoder/,
Intel Xeon, 2 shared cores), two 1024x768 photos, best of 7, per photo:

    pngfile, level 1                     21 ms   1090 KB   (two threads side by side: 21 ms each)
    Pillow, compress_level=1, Z_RLE      46 ms    895 KB   (two threads side by side: 39 ms each)
    Pillow, compress_level=1             51 ms   1060 KB

This module stays while that figure holds (pngfile at most 0.83 of Pillow's time); above it, the
benchmark row fails and ``colorize``'s ``encode()`` should become that one Pillow call.
"""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray + alpha, RGB, RGBA)
UP = 2  # PNG filter type: each byte minus the byte above it
IDAT_BYTES = 1 << 20  # the compressed data goes in IDAT chunks of at most this many bytes


def encode_png(image, level=1):
    """uint8 (H, W, 3) RGB (or (H, W) gray, (H, W, 1), (H, W, 4) RGBA) -> PNG file bytes.

    ``level`` 0-9 as zlib's: 0 stores, 1 is the fast setting (Z_RLE), 2-9 zlib's levels (or level 1's
    stream where that is smaller). Raises ``ValueError`` naming the problem for another dtype, shape
    or level.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"PNG image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in COLOUR_TYPES:
        raise ValueError(f"PNG image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    height, width, channels = image.shape
    if height < 1 or width < 1 or height >= 1 << 31 or width >= 1 << 31:
        raise ValueError(f"PNG image must be 1 to 2^31 - 1 pixels high and wide, got shape {image.shape}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"PNG compression level must be an integer from 0 to 9, got {level!r}")

    rows = image.reshape(height, width * channels)  # a view when the image is contiguous
    filtered = np.empty((height, 1 + width * channels), np.uint8)  # the one full-size copy
    filtered[:, 0] = UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps around, as PNG wants

    pieces = _deflate(filtered, 1, zlib.Z_RLE) if level == 1 else _deflate(filtered, int(level))
    if level >= 2:  # never bigger than level 1 (see above)
        fast = _deflate(filtered, 1, zlib.Z_RLE)
        if _size(fast) < _size(pieces):
            pieces = fast
    del filtered

    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    parts = [SIGNATURE, *_chunk(b"IHDR", header)]
    for segments in _idat_payloads(pieces):
        parts += _chunk(b"IDAT", *segments)
    parts += _chunk(b"IEND")
    return b"".join(parts)


def _deflate(data, level, strategy=zlib.Z_DEFAULT_STRATEGY):
    """The zlib stream of ``data`` in two pieces (no copy to join them)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    return [compressor.compress(data), compressor.flush()]


def _size(pieces):
    return sum(len(piece) for piece in pieces)


def _idat_payloads(pieces):
    """The zlib stream cut into IDAT payloads of at most IDAT_BYTES, each a list of memoryviews."""
    segments, size = [], 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            segments.append(view[: IDAT_BYTES - size])
            size += len(segments[-1])
            view = view[len(segments[-1]) :]
            if size == IDAT_BYTES:
                yield segments
                segments, size = [], 0
    if segments:
        yield segments


def _chunk(kind, *payload):
    """One PNG chunk as pieces to join: length and type, the payload (in pieces), CRC-32 of type and payload."""
    crc = zlib.crc32(kind)
    for segment in payload:
        crc = zlib.crc32(segment, crc)
    return struct.pack(">I", sum(len(segment) for segment in payload)) + kind, *payload, struct.pack(">I", crc)
