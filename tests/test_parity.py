"""One colorization path: `colorize`, the SavedModel's `serving_default` and `evaluate --images` see
and give the same pixels, for every kind of file they take (issue 11).

A stand-in embedder replaces Inception-ResNet-v2 (test_export.py runs the real one in a process
without keras); both doors load the same run dir.
"""

import io
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_colorize import DIM, embedder, run_dir  # noqa: F401  (fixtures)

from koalarization.export import savedmodel as saved_model
from koalarization.colorize import files as colorizing
from koalarization import colors, images, metrics
from koalarization.colorize import files as colorize
from koalarization.model import colorizer
from koalarization.evaluate import scoring as evaluate
from koalarization.evaluate import scoring as evaluation
from koalarization.export import savedmodel as export

WORKING_SIZE = 32


def smooth(rng, height, width):
    """A mid-tone colour picture with gentle gradients, float (H, W, 3) in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width]
    base = rng.random(3) * 0.4 + 0.3
    ramp = 0.15 * (x / max(width, 1))[..., None] - 0.1 * (y / max(height, 1))[..., None]
    return np.clip(base + ramp * np.array([1.0, -0.5, 0.3]), 0, 1)


def u8(rgb):
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def holes():
    """A palette picture (16 x 20) with some pixels of palette index 3."""
    image = Image.fromarray((np.arange(16 * 20, dtype=np.uint8).reshape(16, 20) * 3) % 7, "P")
    image.putpalette([40, 60, 90, 200, 120, 40, 30, 160, 70, 0, 0, 0, 220, 210, 60, 120, 40, 160, 90, 90, 90] + [0] * (768 - 21))
    return image


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One file of every kind both doors take."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(11)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to show": a phone portrait stored as landscape
    files = {
        "portrait_exif.jpg": (Image.fromarray(u8(smooth(rng, 20, 30))), {"exif": exif, "quality": 95}),
        "turned_exif.png": (Image.fromarray(u8(smooth(rng, 22, 34))), {"exif": exif}),  # an eXIf chunk
        "deep16.png": (Image.fromarray((np.linspace(200, 60000, 24 * 18).reshape(24, 18)).astype(np.uint16)), {}),
        "dark16.png": (Image.fromarray((np.linspace(0, 250, 16 * 16).reshape(16, 16)).astype(np.uint16)), {}),  # max <= 255
        "palette.png": (Image.fromarray(u8(smooth(rng, 21, 26))).convert("P", palette=Image.ADAPTIVE, colors=32), {}),
        "rgba.png": (Image.fromarray(np.dstack([u8(smooth(rng, 19, 23)), np.linspace(0, 255, 19 * 23).reshape(19, 23).astype(np.uint8)])), {}),
        "gray.png": (Image.fromarray(u8(smooth(rng, 17, 29))[..., 0]), {}),
        "one.png": (Image.fromarray(np.array([[[200, 90, 40]]], np.uint8)), {}),
        "thin.png": (Image.fromarray(u8(smooth(rng, 7, 300))), {}),
        "frame.gif": (Image.fromarray(u8(smooth(rng, 18, 22))).convert("P"), {}),
        "holes.gif": (holes(), {"transparency": 3}),  # colorize puts index 3 over white; so must the server
        "plain.bmp": (Image.fromarray(u8(smooth(rng, 15, 25))), {}),
        "lossless.webp": (Image.fromarray(u8(smooth(rng, 14, 27))), {"lossless": True}),
        "rotated_exif.webp": (Image.fromarray(u8(smooth(rng, 13, 21))), {"lossless": True, "exif": exif}),  # an EXIF chunk
    }
    for name, (image, options) in files.items():
        image.save(root / name, **options)
    # An eXIf chunk 140 KB into the file (after a long comment): Pillow finds it wherever it is.
    plain = io.BytesIO()
    Image.fromarray(u8(smooth(rng, 12, 18))).save(plain, "PNG")
    plain, tiff = plain.getvalue(), exif.tobytes().removeprefix(b"Exif\0\0")  # the eXIf chunk holds the TIFF structure alone
    (root / "late_exif.png").write_bytes(plain[:33] + _png_chunk(b"tEXt", b"Comment\0" + b"." * 140_000) + _png_chunk(b"eXIf", tiff) + plain[33:])
    return str(root)


@pytest.fixture(scope="module")
def served(run_dir, embedder, tmp_path_factory):
    """serving_default of the SavedModel exported from the same run dir, loaded back."""
    loaded = colorizer.Colorizer.load(run_dir, inception=embedder, working_size=WORKING_SIZE)
    path = saved_model.export_saved_model(loaded, tmp_path_factory.mktemp("models") / "1", "random", max_pixels=10_000_000)
    return tf.saved_model.load(path)


@pytest.fixture(scope="module")
def written(corpus, run_dir, embedder, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("colorized"))
    config = colorizing.ColorizeConfig(inputs=(corpus,), out_dir=out, model=run_dir, working_size=WORKING_SIZE, batch_size=4)
    summary = colorizing.colorize_files(config, inception=embedder, log=lambda message: None)
    assert not summary.failed, summary.failed
    return out


def test_colorize_and_serving_default_give_the_same_picture(corpus, written, served):
    serve = served.signatures["serving_default"]
    for name in sorted(os.listdir(corpus)):
        with open(os.path.join(corpus, name), "rb") as f:
            png = serve(image_bytes=tf.constant([f.read()]))["colorized_bytes"][0]
        from_server = tf.io.decode_png(png).numpy().astype(int)
        from_cli = np.asarray(Image.open(os.path.join(written, os.path.splitext(name)[0] + ".png"))).astype(int)
        assert from_server.shape == from_cli.shape, name
        assert np.abs(from_server - from_cli).max() <= 2, name


def test_exif_orientation_is_applied_by_both(written, served, corpus):
    # stored 20 rows x 30 columns (22 x 34), shown (and colorized) 30 x 20 (34 x 22); the served
    # pictures equal these (test_colorize_and_serving_default_give_the_same_picture)
    assert np.asarray(Image.open(os.path.join(written, "portrait_exif.png"))).shape == (30, 20, 3)
    assert np.asarray(Image.open(os.path.join(written, "turned_exif.png"))).shape == (34, 22, 3)
    # a WebP's EXIF chunk (13 x 21 stored) and a PNG's eXIf after its first 128 KB (12 x 18 stored)
    assert np.asarray(Image.open(os.path.join(written, "rotated_exif.png"))).shape == (21, 13, 3)
    assert np.asarray(Image.open(os.path.join(written, "late_exif.png"))).shape == (18, 12, 3)


def test_one_bad_image_in_a_batch_is_named(corpus, served):
    serve = served.signatures["serving_default"]
    with open(os.path.join(corpus, "gray.png"), "rb") as f:
        good = f.read()
    tiff = os.path.join(corpus, "..", "x.tif")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tiff)
    with open(tiff, "rb") as f:
        bad = f.read()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[1\]: not an image this server decodes .* got TIFF"):
        serve(image_bytes=tf.constant([good, bad]))


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, served):
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 48 KB of zlib, 400 million pixels
    serve = served.signatures["serving_default"]
    message = r"image_bytes\[0\]: image of 20000x20000 pixels is over the limit of 10000000 pixels"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant([(tmp_path / "bomb.png").read_bytes()]))


def test_colorize_lab_refuses_sizes_that_are_not_multiples_of_8(served):
    with pytest.raises(tf.errors.InvalidArgumentError, match="l is 1x30x32x1; H and W must be multiples of 8"):
        served.signatures["colorize_lab"](l=tf.zeros([1, 30, 32, 1]), embedding=tf.zeros([1, DIM]))
    assert served.signatures["colorize_lab"](l=tf.zeros([1, 24, 32, 1]), embedding=tf.zeros([1, DIM]))["ab"].shape == (1, 24, 32, 2)


def test_colorize_skips_photos_over_max_pixels_and_says_so(corpus, run_dir, embedder, tmp_path):
    config = colorizing.ColorizeConfig(
        inputs=(os.path.join(corpus, "thin.png"), os.path.join(corpus, "one.png")), out_dir=str(tmp_path), model=run_dir,
        working_size=WORKING_SIZE, max_pixels=1000,
    )  # fmt: skip
    summary = colorizing.colorize_files(config, inception=embedder, log=lambda message: None)
    assert summary.colorized == [str(tmp_path / "one.png")]
    [(path, reason)] = summary.failed
    assert path.endswith("thin.png") and "300x7 = 2100 pixels, over the limit of 1000" in reason


def test_evaluate_scores_exactly_the_pixels_colorize_writes(corpus, written, run_dir, embedder, tmp_path):
    config = evaluation.EvaluateConfig(
        model=run_dir, out_dir=str(tmp_path / "eval"), images=(corpus,), working_size=WORKING_SIZE, batch_size=4
    )
    report = evaluation.evaluate(config, inception=embedder, log=lambda message: None)
    scored = {os.path.basename(img["key"]): img for img in report["images"]}
    assert "one.png" not in scored and [os.path.basename(s["key"]) for s in report["skipped"]] == ["one.png"]
    assert "too small to score" in report["skipped"][0]["reason"]
    assert len(scored) == len(os.listdir(corpus)) - 1
    for name, img in scored.items():
        original = images.read_image(os.path.join(corpus, name))
        output = np.asarray(Image.open(os.path.join(written, os.path.splitext(name)[0] + ".png"))) / 255.0
        # The same method and encoder; the network's float output may still round to another level
        # on a few pixels when a photo shares its batch with other photos (oneDNN picks kernels by
        # batch shape): a few levels on a few pixels move PSNR by far less than 0.01 dB.
        assert img["model"]["psnr"] == pytest.approx(metrics.psnr(output, original), abs=0.01), name
        assert img["model"]["ssim"] == pytest.approx(metrics.ssim(output, original), abs=1e-3), name
    assert scored["gray.png"]["gray_original"] and scored["deep16.png"]["gray_original"]
    assert not scored["plain.bmp"]["gray_original"]
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["gray_originals"] == sum(img["gray_original"] for img in scored.values())
    assert "gray original(s) scored apart" in (tmp_path / "eval" / "metrics.md").read_text()


@pytest.mark.parametrize("name,rows,columns", [("chelsea", None, None), ("astronaut", 400, 90), ("coffee", 45, 60)])
def test_inference_gives_inception_the_input_the_builder_recorded(name, rows, columns):
    """The embedding a photo gets when colorized is the one it got in the records the network trained
    on, exactly: the builder (from the decoded uint8 pixels) and inference (from the float photo
    colorize decodes) run the same function, for a photo shrunk, a tall one and a tiny one that is enlarged."""
    import skimage.data

    from koalarization.model import method as inference
    from tfrecords_builder import builder

    pixels = np.ascontiguousarray(getattr(skimage.data, name)()[:rows, :columns, :3])  # uint8, as decoded
    at_inference = inference.network_inputs(colors.to_float_rgb(pixels), WORKING_SIZE)[1].numpy()
    in_the_records = builder._letterbox_and_convert(WORKING_SIZE)(tf.constant(pixels))[1].numpy()
    assert at_inference.shape == in_the_records.shape == (299, 299, 3)
    np.testing.assert_array_equal(at_inference, in_the_records)


@pytest.mark.parametrize("name,rows,columns", [("chelsea", None, None), ("astronaut", 400, 90), ("coffee", 45, 60)])
def test_evaluate_on_records_shows_the_colorizer_the_l_inference_shows_it(name, rows, columns, tmp_path):
    """Records hold L with white bars (as training saw it); ``evaluate --records`` repeats the photo's
    edges into them, as colorize, serving and films do, so its scores are of the picture users get:
    equal to inference's L input up to the records' storage step (L in 256 levels)."""
    import skimage.data

    from koalarization import records
    from koalarization.evaluate import scoring as evaluation
    from koalarization.model import method as inference
    from koalarization.records.dataset import Records

    photo = getattr(skimage.data, name)()[:rows, :columns, :3].astype(np.float32) / 255.0
    at_inference = inference.network_inputs(tf.constant(photo), WORKING_SIZE)[0].numpy()  # (S, S, 1)
    lab = colors.prepare_lab(tf.constant(photo), WORKING_SIZE).numpy()
    example = records.serialize_example("p", photo.shape[0], photo.shape[1], lab, np.zeros(4))
    stored = records.parse_examples(tf.constant([example]), WORKING_SIZE, 4)
    shown = colors.repeat_edges(stored["l"][0], photo.shape[0], photo.shape[1]).numpy()
    step = 2 * (colors.scale_l(1 / records.L_QUANT) - colors.scale_l(0.0))  # two storage steps of L, scaled
    assert np.abs(shown - at_inference).max() <= step
    white = stored["l"][0].numpy()
    assert np.abs(white - at_inference).max() > 0.1  # the white bars themselves are far from it

    seen = []

    def predict_ab(l, embedding):
        seen.append(np.asarray(l))
        return np.zeros(l.shape[:3] + (2,), np.float32)

    config = types.SimpleNamespace(records=None, split="train", batch_size=1, max_examples=0)
    records_dir = str(tmp_path)
    records.write_shard(os.path.join(records_dir, records.shard_name("train", 0)), [example])
    manifest = records.make_manifest(WORKING_SIZE, {"model": "x", "weights": {"source": "random"}, "dim": 4},
                                     {"train": {"examples": 1, "shards": [records.shard_name("train", 0)]}, "val": {"examples": 0, "shards": []}})  # fmt: skip
    records.write_json_atomic(os.path.join(records_dir, records.MANIFEST_NAME), manifest)
    config.records = records_dir
    list(evaluation.record_examples(config, Records(records_dir), predict_ab, 4))
    assert np.array_equal(seen[0][0], shown)  # evaluate --records feeds exactly that


def test_the_cli_reads_every_png_as_the_server_decodes_it(corpus, tmp_path):
    """Pixel for pixel, 16-bit colour PNGs included (Pillow alone keeps 8 of their bits); and a 16-bit
    PNG's EXIF orientation is applied as for any other."""
    from koalarization.model import decode

    rng = np.random.default_rng(4)
    for name, channels in (("deep16rgb.png", 3), ("deep16rgba.png", 4), ("deep16la.png", 2)):
        samples = rng.integers(0, 65536, (9, 13, channels)).astype(np.uint16)
        (tmp_path / name).write_bytes(tf.io.encode_png(samples).numpy())
    paths = [os.path.join(corpus, n) for n in sorted(os.listdir(corpus)) if n.endswith(".png")] + sorted(str(p) for p in tmp_path.glob("*.png"))
    for path in paths:
        with open(path, "rb") as f:
            served = decode.decode(tf.constant(f.read()), 0, "x").numpy()
        assert np.array_equal(images.read_image(path), served), path

    turned = Image.new("RGB", (13, 9))
    exif = turned.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    deep = tf.io.encode_png(rng.integers(0, 65536, (9, 13, 3)).astype(np.uint16)).numpy()
    Image.open(io.BytesIO(deep)).save(tmp_path / "turned8.png", exif=exif.tobytes())  # Pillow writes it at 8 bits
    with_exif = deep[:33] + _png_chunk(b"eXIf", exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()) + deep[33:]
    upright = images.read_image(with_exif)
    assert upright.shape == (13, 9, 3)
    np.testing.assert_array_equal(upright, np.rot90(images.read_image(deep), -1))
    assert images.read_image(str(tmp_path / "turned8.png")).shape == (13, 9, 3)  # as Pillow turns an 8-bit one


def _png_chunk(kind, data):
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_a_16_bit_png_is_opened_once_and_decoded_once(tmp_path, monkeypatch):
    """Its header is read by Pillow's open alone, its pixels by TensorFlow alone (not by Pillow at 8
    bits as well, to look for an eXIf chunk); an eXIf after the pixels still turns it."""
    import builtins

    from PIL import ImageFile

    samples = np.random.default_rng(2).integers(0, 65536, (9, 13, 3)).astype(np.uint16)
    deep = tf.io.encode_png(samples).numpy()
    exif = Image.Exif()
    exif[0x0112] = 6
    end = deep.rindex(b"IEND") - 4
    path = tmp_path / "deep16.png"
    path.write_bytes(deep[:end] + _png_chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\0\0")) + deep[end:])
    opened, decoded = [], []
    real_open, real_load = builtins.open, ImageFile.ImageFile.load
    monkeypatch.setattr(builtins, "open", lambda file, *args, **kwargs: opened.append(file) or real_open(file, *args, **kwargs))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image) or real_load(image))
    pixels = images.read_pixels(str(path))
    monkeypatch.undo()
    assert [os.fspath(f) for f in opened if isinstance(f, (str, os.PathLike))].count(str(path)) == 1
    assert decoded == []
    np.testing.assert_array_equal(pixels, np.rot90(samples, -1))


def test_an_int32_tiff_of_8_bit_values_is_that_8_bit_photo_and_the_server_refuses_tiff_by_name(tmp_path):
    """Pillow reads 32-bit integer TIFFs (mode "I") without their depth: the values' range gives it,
    so 0..255 is 8-bit (not 1/257 of full scale, nearly black) and 0..65535 16-bit."""
    import tifffile

    from koalarization.model import decode

    photo = u8(smooth(np.random.default_rng(3), 10, 12))  # (10, 12, 3) uint8
    gray = photo[..., 0]
    Image.fromarray(gray.astype(np.int32), "I").save(tmp_path / "int32.tif")  # Pillow opens it
    tifffile.imwrite(tmp_path / "uint32.tif", photo.astype(np.uint32))  # only tifffile does
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(images.read_image(str(tmp_path / "int32.tif")), images.read_image(str(tmp_path / "gray.png")))
    np.testing.assert_array_equal(images.read_pixels(str(tmp_path / "uint32.tif")), photo)
    Image.fromarray(gray.astype(np.int32) * 257, "I").save(tmp_path / "int32_16bit.tif")
    assert images.read_pixels(str(tmp_path / "int32_16bit.tif")).dtype == np.uint16  # 16-bit: v / 65535 = the 8-bit v / 255
    np.testing.assert_allclose(images.read_image(str(tmp_path / "int32_16bit.tif")), images.read_image(str(tmp_path / "gray.png")), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"int32: not an image this server decodes .* got TIFF"):
        decode.decode(tf.constant((tmp_path / "int32.tif").read_bytes()), 0, "int32")
