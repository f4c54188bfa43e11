"""Encoded image bytes -> sRGB, in TensorFlow ops only: the SavedModel's decoder.

The command line decodes files with Pillow (:mod:`koalarization.images`), which reads more
formats; this module makes the served graph see the same pixels for the formats it takes:

- the format and the pixel size are read from the header **before** decoding (PNG IHDR, GIF
  screen, BMP and WebP headers, ``tf.image.extract_jpeg_shape``), so a decompression bomb is one
  ``InvalidArgumentError`` that names the element, not gigabytes of allocation;
- the EXIF orientation of a JPEG (APP1 ``Exif`` segment), a PNG (``eXIf`` chunk, before or after
  the pixels) or a WebP (``EXIF`` chunk), tag 0x0112, is parsed in the graph (the file's blocks are
  walked to their end, as Pillow does) and applied with ``rot90``/flips, as Pillow's
  ``ImageOps.exif_transpose`` does for ``colorize``;
- a 16-bit PNG is read at 16 bits and scaled by 65535, as :func:`koalarization.images.read_pixels`;
- gray, gray + alpha and RGBA become sRGB by the one shared function, ``colors.to_float_rgb``;
- a GIF's transparent pixels come out white, as over white in ``colorize`` (its transparent
  palette entry made opaque white before decoding: TensorFlow's decoder would give them black).

Formats: JPEG, PNG, GIF (first frame), BMP and WebP; anything else (TIFF, ...) is refused with
the format named.
"""

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import colors

FORMATS = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP", "TIFF")
DECODED = (1, 2, 3, 4, 5)  # indices of FORMATS the graph decodes
HEADER_BYTES = 32
EXIF_SEARCH_BYTES = 1 << 17  # bytes of an EXIF block looked at for its first IFD (a JPEG's APP1 is at most 64 KB)
EXIF_MAX_ENTRIES = 64  # IFD0 entries looked at for the orientation tag
ORIENTATION_TAG = 0x0112


def _bytes_of(data, length):
    """The first ``length`` bytes of the scalar string ``data`` as int64 (length,), zero padded."""
    head = tf.strings.substr(data, 0, length)
    head = tf.strings.join([head, tf.constant(b"\0" * length)])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(head, 0, length), tf.uint8), tf.int64)  # (length,)


def _at(values, index):
    return tf.gather(values, tf.clip_by_value(tf.cast(index, tf.int64), 0, tf.size(values, tf.int64) - 1))


def _uint(values, index, size, little):
    """Unsigned integer of ``size`` bytes at ``index``, little or big endian (``little``: bool tensor)."""
    parts = [_at(values, tf.cast(index, tf.int64) + k) for k in range(size)]
    little_value = sum(part * (256**k) for k, part in enumerate(parts))
    big_value = sum(part * (256**k) for k, part in enumerate(reversed(parts)))
    return tf.where(little, little_value, big_value)


def sniff(data):
    """Scalar string -> ``(format index into FORMATS, height, width)`` (int32, int64, int64) from the header.

    JPEG sizes come from ``tf.image.extract_jpeg_shape`` (which reads the header only); the others
    from fixed header fields. Nothing is decoded.
    """
    head = _bytes_of(data, HEADER_BYTES)  # (32,)
    little, big = tf.constant(True), tf.constant(False)

    def starts(*values, at=0):
        return tf.reduce_all(tf.equal(head[at : at + len(values)], tf.constant(values, tf.int64)))

    is_webp = starts(*b"RIFF") & starts(*b"WEBP", at=8)
    fmt = tf.case(
        [
            (starts(0xFF, 0xD8, 0xFF), lambda: tf.constant(1)),
            (starts(*b"\x89PNG\r\n\x1a\n"), lambda: tf.constant(2)),
            (starts(*b"GIF8"), lambda: tf.constant(3)),
            (starts(*b"BM"), lambda: tf.constant(4)),
            (is_webp, lambda: tf.constant(5)),
            (starts(*b"II*\0") | starts(*b"MM\0*"), lambda: tf.constant(6)),
        ],
        default=lambda: tf.constant(0),
    )

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    def webp():
        chunk = head[12:16]
        vp8l = tf.reduce_all(tf.equal(chunk, tf.constant(list(b"VP8L"), tf.int64)))
        vp8x = tf.reduce_all(tf.equal(chunk, tf.constant(list(b"VP8X"), tf.int64)))
        b = [head[21 + k] for k in range(4)]
        lossless = (1 + (b[1] // 64 + b[2] * 4 + (b[3] % 16) * 1024), 1 + b[0] + (b[1] % 64) * 256)
        extended = (1 + _uint(head, 27, 3, little), 1 + _uint(head, 24, 3, little))
        lossy = (_uint(head, 28, 2, little) % 16384, _uint(head, 26, 2, little) % 16384)
        return tuple(tf.where(vp8x, e, tf.where(vp8l, l, y)) for e, l, y in zip(extended, lossless, lossy))

    def signed32(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    zero = tf.constant(0, tf.int64)
    height, width = tf.switch_case(
        fmt,
        [
            lambda: (zero, zero),
            jpeg,
            lambda: (_uint(head, 20, 4, big), _uint(head, 16, 4, big)),
            lambda: (_uint(head, 8, 2, little), _uint(head, 6, 2, little)),
            lambda: (tf.abs(signed32(_uint(head, 22, 4, little))), tf.abs(signed32(_uint(head, 18, 4, little)))),
            webp,
            lambda: (zero, zero),
        ],
    )
    return fmt, height, width


def _size(data):
    return tf.cast(tf.strings.length(data), tf.int64)


def _read(data, position, length):
    """``length`` bytes of the scalar string ``data`` from ``position`` as int64 (length,), zero padded
    past its end: a look anywhere in a file without converting the bytes before it."""
    return _bytes_of(tf.strings.substr(data, tf.minimum(tf.cast(position, tf.int64), _size(data)), length), length)


def _walk(data, start, step, stop):
    """The position of the first block of a chain of blocks (JPEG segments, PNG or RIFF chunks) from
    ``start`` where ``stop(head)`` holds, ``head`` its first 8 bytes (int64 (8,)); -1 when none does
    before the end. ``step(head)``: the block's whole size (at least 2, so the walk ends)."""
    size = _size(data)

    def going_on(p, found):
        return (found < 0) & (p + 8 <= size)

    def next_block(p, found):
        head = _read(data, p, 8)
        return [p + tf.maximum(step(head), 2), tf.where(stop(head), p, found)]

    return tf.while_loop(going_on, next_block, [tf.cast(start, tf.int64), tf.constant(-1, tf.int64)])[1]


def _is(values, text):
    return tf.reduce_all(tf.equal(values, tf.constant(list(text), tf.int64)))


def _exif_block_orientation(data, position, found):
    """The orientation tag of the EXIF block at ``position`` of ``data`` (a TIFF structure, after an
    optional ``Exif\\0\\0``, as Pillow's ``Exif.load`` takes it); 1 unless ``found``. The block's first
    ``EXIF_SEARCH_BYTES`` are looked at."""
    values = _read(data, tf.maximum(position, 0), EXIF_SEARCH_BYTES)  # (N,)
    tiff = tf.where(_is(values[:6], b"Exif\0\0"), tf.constant(6, tf.int64), 0)
    return _tiff_orientation(values, tiff, found & (position >= 0))


def exif_orientation(data):
    """Scalar string (a JPEG) -> the EXIF orientation 1..8 of its APP1 ``Exif`` segment (int32; 1 when
    there is none before the image data), read in the graph."""
    big = tf.constant(False)
    app1 = _walk(
        data, 2,
        step=lambda head: 2 + _uint(head, 2, 2, big),  # FF xx LEN(2) ...: the length counts itself
        stop=lambda head: ~tf.equal(head[0], 0xFF) | tf.equal(head[1], 0xDA) | (tf.equal(head[1], 0xE1) & _is(head[4:8], b"Exif")),
    )  # fmt: skip
    found = tf.equal(_read(data, app1 + 1, 1)[0], 0xE1) & _is(_read(data, app1 + 4, 6), b"Exif\0\0")
    return _exif_block_orientation(data, app1 + 10, found)


def png_exif_orientation(data):
    """Scalar string (a PNG) -> the EXIF orientation 1..8 of its ``eXIf`` chunk (int32; 1 when none),
    wherever the chunk is (before or after the pixels), as Pillow reads it for ``colorize``."""
    big = tf.constant(False)
    chunk = _walk(data, 8, step=lambda head: 12 + _uint(head, 0, 4, big), stop=lambda head: _is(head[4:8], b"eXIf") | _is(head[4:8], b"IEND"))
    return _exif_block_orientation(data, chunk + 8, _is(_read(data, chunk + 4, 4), b"eXIf"))


def webp_exif_orientation(data):
    """Scalar string (a WebP) -> the EXIF orientation 1..8 of its ``EXIF`` chunk (int32; 1 when none),
    as libwebp gives it to Pillow for ``colorize``: an extended (``VP8X``) file whose header flags EXIF."""
    head = _bytes_of(data, 21)
    flagged = _is(head[12:16], b"VP8X") & tf.equal((head[20] // 8) % 2, 1)
    little = tf.constant(True)
    chunk = _walk(data, 12, step=lambda head: 8 + _uint(head, 4, 4, little) + _uint(head, 4, 4, little) % 2, stop=lambda head: _is(head[:4], b"EXIF"))
    return _exif_block_orientation(data, chunk + 8, flagged & (chunk >= 0))


def _tiff_orientation(values, tiff, found):
    """The orientation tag of the TIFF structure (EXIF) at ``tiff`` in ``values``, 1 unless ``found``."""
    little = tf.equal(_at(values, tiff), ord("I"))
    ifd = tiff + _uint(values, tiff + 4, 4, little)
    count = _uint(values, ifd, 2, little)
    entries = ifd + 2 + 12 * tf.range(EXIF_MAX_ENTRIES, dtype=tf.int64)  # (E,)
    tags = _uint(values, entries, 2, little)  # (E,)
    match = tf.equal(tags, ORIENTATION_TAG) & (tf.range(EXIF_MAX_ENTRIES, dtype=tf.int64) < count)
    entry = tf.reduce_sum(tf.where(match, entries, 0)) * tf.cast(tf.reduce_sum(tf.cast(match, tf.int64)) == 1, tf.int64)
    orientation = tf.where(found & (entry > 0), _uint(values, entry + 8, 2, little), 1)
    return tf.cast(tf.where((orientation >= 1) & (orientation <= 8), orientation, 1), tf.int32)


GIF_SEARCH_BYTES = 1 << 16  # the first frame's extensions and descriptor follow the colour table
_BYTES = tuple(bytes([i]) for i in range(256))


def _replace_bytes(data, positions, values):
    """Scalar string ``data`` with the bytes at ``positions`` (int64 (K,), distinct) set to ``values`` (K,)."""
    order = tf.argsort(positions)
    positions, values = tf.gather(positions, order), tf.gather(values, order)
    starts = tf.concat([[0], positions + 1], 0)  # (K + 1,): the kept runs between the replaced bytes
    ends = tf.concat([positions, [tf.cast(tf.strings.length(data), tf.int64)]], 0)
    runs = tf.strings.substr(tf.fill([tf.size(starts)], data), starts, ends - starts)  # (K + 1,)
    new = tf.gather(tf.constant(_BYTES), values)  # (K,)
    pieces = tf.reshape(tf.stack([runs[:-1], new], axis=1), [-1])  # run, byte, run, byte, ...
    return tf.strings.reduce_join(tf.concat([pieces, runs[-1:]], 0))


def gif_without_transparency(data):
    """Scalar string (a GIF) -> the same GIF whose first frame's transparent colour is opaque white.

    TensorFlow's GIF decoder gives transparent pixels as black, which no real black can be told
    from; ``colorize`` (Pillow) puts every transparent pixel over white. Here the transparent
    palette entry of the first frame (in its local colour table, else the global one) is made
    white and the frame's transparency flag cleared, so the decoder gives those pixels white.
    """
    values = _bytes_of(data, GIF_SEARCH_BYTES)  # (N,)
    screen = _at(values, 10)
    position = 13 + tf.where(screen >= 128, 3 * 2 ** (screen % 8 + 1), 0)  # after the global colour table

    def skip_sub_blocks(p):  # p at a sub-block's size byte -> after the terminating 0
        return tf.while_loop(lambda q: (_at(values, q) > 0) & (q < GIF_SEARCH_BYTES), lambda q: [q + _at(values, q) + 1],
                             [p], maximum_iterations=4096)[0] + 1  # fmt: skip

    def extension(p, gce):  # p at 0x21: remember a Graphic Control Extension, go past the block
        return [skip_sub_blocks(p + 2), tf.where(tf.equal(_at(values, p + 1), 0xF9), p, gce)]

    position, gce = tf.while_loop(
        lambda p, gce: tf.equal(_at(values, p), 0x21) & (p < GIF_SEARCH_BYTES), extension,
        [position, tf.constant(-1, tf.int64)], maximum_iterations=64,
    )  # fmt: skip
    descriptor = position  # 0x2C: the first frame
    local = _at(values, descriptor + 9)
    table = tf.where(local >= 128, descriptor + 10, tf.where(screen >= 128, tf.constant(13, tf.int64), -1))
    index = _at(values, gce + 6)
    transparent = (gce >= 0) & tf.equal(_at(values, gce + 3) % 2, 1) & tf.equal(_at(values, descriptor), 0x2C) & (table >= 0)
    transparent &= table + 3 * index + 2 < GIF_SEARCH_BYTES

    def opaque_white():
        positions = tf.stack([gce + 3, table + 3 * index, table + 3 * index + 1, table + 3 * index + 2])
        values_ = tf.stack([_at(values, gce + 3) - 1, 255, 255, 255])
        return _replace_bytes(data, positions, values_)

    return tf.cond(transparent, opaque_white, lambda: data)


def apply_orientation(image, orientation):
    """(H, W, C) as stored + EXIF orientation 1..8 -> the image as it should be shown (``exif_transpose``)."""
    return tf.switch_case(
        orientation - 1,
        [
            lambda: image,
            lambda: tf.image.flip_left_right(image),
            lambda: tf.image.rot90(image, 2),
            lambda: tf.image.flip_up_down(image),
            lambda: tf.image.transpose(image),
            lambda: tf.image.rot90(image, 3),
            lambda: tf.image.rot90(tf.image.transpose(image), 2),
            lambda: tf.image.rot90(image, 1),
        ],
    )


def decode(data, max_pixels=0, name="image"):
    """Scalar string (encoded image) -> float32 sRGB (H, W, 3) in [0, 1], as ``colorize`` reads the file.

    Raises ``InvalidArgumentError`` naming ``name`` (e.g. ``image_bytes[3]``) for a format the graph
    does not decode, an empty image, or one of more than ``max_pixels`` pixels (0: no limit), before
    anything big is allocated.
    """
    fmt, height, width = sniff(data)
    decodable = tf.reduce_any(tf.equal(fmt, DECODED))
    def check(condition, *parts):  # the message: the element's name, then the parts (strings or numbers)
        parts = [part if isinstance(part, str) or part.dtype == tf.string else tf.strings.as_string(part) for part in parts]
        return tf.debugging.Assert(condition, [tf.strings.join([name, ": ", *parts])])

    checks = [
        check(decodable, "not an image this server decodes (it takes JPEG, PNG, GIF, BMP, WebP); got ", tf.gather(FORMATS, fmt)),
        check(tf.logical_not(decodable) | (height * width > 0), "image of size 0 in its header"),
    ]
    if max_pixels:
        limit = f" pixels is over the limit of {max_pixels} pixels (export --max-pixels)"
        checks.append(check(height * width <= max_pixels, "image of ", width, "x", height, limit))
    with tf.control_dependencies(checks):
        data = tf.identity(data)

    def png():
        depth16 = tf.equal(_bytes_of(data, 25)[24], 16)
        return tf.cond(
            depth16,
            lambda: colors.to_float_rgb(apply_orientation(tf.io.decode_png(data, dtype=tf.uint16), png_exif_orientation(data))),
            lambda: colors.to_float_rgb(apply_orientation(tf.io.decode_png(data), png_exif_orientation(data))),
        )

    def jpeg():
        image = tf.io.decode_jpeg(data, dct_method="INTEGER_ACCURATE")  # (H, W, 1|3) uint8, Pillow's exact pixels
        return colors.to_float_rgb(apply_orientation(image, exif_orientation(data)))

    def gif():
        return colors.to_float_rgb(tf.io.decode_gif(gif_without_transparency(data))[0])  # the first frame

    def webp():
        image = tf.io.decode_image(data, expand_animations=False)  # (H, W, 3|4) uint8
        return colors.to_float_rgb(apply_orientation(image, webp_exif_orientation(data)))

    def bmp():
        return colors.to_float_rgb(tf.io.decode_image(data, expand_animations=False))

    rgb = tf.case([(tf.equal(fmt, 1), jpeg), (tf.equal(fmt, 2), png), (tf.equal(fmt, 3), gif), (tf.equal(fmt, 5), webp)], default=bmp)
    return tf.ensure_shape(rgb, [None, None, 3])  # (H, W, 3)
