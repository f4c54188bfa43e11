"""Video figures: frames/s of ``koalarization.video`` against the same frames as separate photos,
and its peak memory on a long clip against a short one. Also the synthetic clips (tests use them).

Both sides run the same Colorizer (Inception-ResNet-v2 with random weights and a random
colorizer at 224): what differs is only what the video path adds (decoding, cut detection,
smoothing, H.264 encoding, remuxing) against decoding and writing PNG files.
"""

import fractions
import os
import tempfile

import numpy as np

from benchmarks import alternate_until_stable, figure, stability_note

FPS = 25


def clip_frame(i, height, width, cut=None, static=False):
    """Frame ``i`` (uint8 (H, W, 3)) of a synthetic shot: a moving colour gradient and a moving disc;
    from frame ``cut`` on, another shot (darker, other colours, the gradient the other way)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height - 1, 1), x / max(width - 1, 1)
    second = cut is not None and i >= cut
    t = 0.0 if static else (i - (cut if second else 0)) / 40.0
    if not second:
        base = np.stack([0.2 + 0.7 * ((x + t) % 1.0), 0.3 + 0.5 * y, np.full_like(x, 0.6)], -1)
        centre, colour = (0.3 + 0.4 * (t % 1.0), 0.5), (0.95, 0.9, 0.2)
    else:
        base = np.stack([np.full_like(x, 0.1), 0.15 + 0.3 * ((1.0 - x + t) % 1.0), 0.25 + 0.2 * y], -1)
        centre, colour = (0.5, 0.7 - 0.4 * (t % 1.0)), (0.1, 0.2, 0.5)
    disc = (((x - centre[0]) * width) ** 2 + ((y - centre[1]) * height) ** 2) < (0.2 * min(height, width)) ** 2
    base[disc] = colour
    return np.round(base * 255).astype(np.uint8)


def write_clip(path, frames=40, height=48, width=64, cut=None, static=False, grain=0.0, exposure=0.0, audio=True,
               rotation=None, pts=None, codec="libx264", audio_codec="aac", seed=0):
    """A test clip: ``frames`` frames at 25 fps (``pts`` in 1/1000 s: variable frame rate), H.264 at crf 12
    (yuv444p for odd sizes), AAC audio, optional film grain (std in 0..255) and exposure flicker (std of
    each frame's gain), rotation tag (degrees, counter-clockwise).
    Returns the uint8 frames as stored (before the codec)."""
    import av

    rng = np.random.default_rng(seed)
    out = []
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.options = {"crf": "12"}
        if pts is not None:
            stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio_codec, rate=16000)
            sound.layout = "mono"
        for i in range(frames):
            rgb = clip_frame(i, height, width, cut, static).astype(np.float32)
            if grain or exposure:
                rgb = rgb * (1.0 + rng.normal(0.0, exposure)) + rng.normal(0.0, grain, rgb.shape)
            rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
            out.append(rgb)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = int(16000 * frames / FPS)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
            planar = sound.codec_context.format.name == "fltp"  # aac; else 16-bit (pcm_*)
            wave = wave if planar else (wave * 32767).astype(np.int16)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp" if planar else "s16", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return out


def _plan(sizes):
    """``(speed frames, (long, short) memory frames, memory frame size)`` for FULL, QUICK (rounds == 1) or SMOKE."""
    if not sizes.real_inception:
        return 4, (24, 6), (48, 64)
    if sizes.rounds < 2:
        return 16, (300, 30), (240, 320)
    return 48, (3000, 300), (480, 640)


def video_speed(sizes, log=print):
    """Figure: frames/s of the video path on a 640x480 clip vs the same frames as separate PNG photos."""
    from PIL import Image

    from benchmarks.pipeline import _embedder_name, embedder
    from koalarization.colorize import files as colorizing
    from koalarization.video import films
    from koalarization.model import network as model
    from koalarization.model.colorizer import Colorizer
    from koalarization.colorize.config import ColorizeConfig

    count, _, _ = _plan(sizes)
    height, width = (480, 640) if sizes.real_inception else (48, 64)
    network = model.build_colorizer(1000)
    colorizer = Colorizer.from_keras(network, embedder(sizes.real_inception), sizes.colorizer_size)
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        network.save(os.path.join(tmp, "model.keras"))  # colorize_files names its model (the Colorizer is given)
        clip = os.path.join(tmp, "clip.mp4")
        write_clip(clip, count, height, width, cut=count // 2)
        photos = []
        for i, frame in enumerate(films.frames(films.probe(clip))):  # the same decoded frames, as PNG files
            photos.append(os.path.join(tmp, f"frame-{i:05d}.png"))
            Image.fromarray(frame[1]).save(photos[-1])
        config = films.VideoConfig(inputs=(clip,), out_dir=os.path.join(tmp, "out"), model="-", overwrite=True)
        os.makedirs(config.out_dir)
        photo_config = ColorizeConfig(inputs=tuple(photos), out_dir=os.path.join(tmp, "photos-out"), model=os.path.join(tmp, "model.keras"), overwrite=True)

        def as_video():
            films.colorize_video(config, clip, colorizer, log=lambda _: None, progress=False)

        def as_photos():  # the colorize command's own function, with the same Colorizer
            colorizing.colorize_files(photo_config, colorizer=colorizer, log=lambda _: None)

        log(f"video: {count} frames of {width}x{height}, as a video and as PNG photos, {_embedder_name(sizes)}")
        as_video(), as_photos()  # warm up: both trace the same functions
        # Each side is seconds long and the two share the machine's moods: alternated until their ratio is
        # stable (three runs a side moved the figure 0.84-0.98 between full runs).
        quick = sizes.rounds < 2
        result = alternate_until_stable([as_photos, as_video], min_rounds=3 if quick else 5, max_rounds=3 if quick else 11, budget_s=150.0)
        photos_s, video_s = result["seconds"]
    return [
        figure(
            "video_speed", f"colorize a {width}x{height} video: frames/s vs the same frames as photos",
            ("video frames/s", count / video_s, "frames/s"), ("photo frames/s", count / photos_s, "frames/s"),
            goal=(">=", 0.9), ratio=result["ratio"], spread=result["spread"],
            note=(
                f"{count} frames with one cut, {stability_note(result)}, one Colorizer ({_embedder_name(sizes)}, random colorizer at {sizes.colorizer_size}) for both: "
                f"the video side decodes, detects cuts, smooths and encodes H.264 (crf 18) in chunks and remuxes the "
                f"audio; the photo side is colorize's colorize_files on the frames as PNG files (read, batches of 8, PNG out)"
            ),
        )
    ]


# Runs `koalarization.video` with a stand-in embedder and a random colorizer at 64: the memory that
# could grow with the film is the video path's own, not the networks' fixed share.
MEMORY_SCRIPT = """
import sys
import keras
from koalarization import cli
from koalarization.video import films
from koalarization.video.config import VideoConfig
x = keras.Input((299, 299, 3))
pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(13)(x))
stand_in = keras.Model(x, keras.layers.Dense(1000)(pooled))
sys.exit(cli.command(VideoConfig, films.run)(sys.argv[1:], inception=stand_in))
"""


def video_memory(sizes, log=print):
    """Figure: peak memory of the video command on a long clip vs a ten times shorter one."""
    import json

    import keras

    from benchmarks.memory import MB, peak_rss
    from koalarization.model import network as model

    _, (long, short), (height, width) = _plan(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-videomem-") as tmp:
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        model.build_colorizer(1000).save(os.path.join(run, "model.keras"))
        keras.backend.clear_session()
        with open(os.path.join(run, "config.json"), "w") as f:
            json.dump({"records": {"image_size": 64}}, f)
        peaks = {}
        for count in (long, short):
            log(f"video peak memory: {count} frames of {width}x{height} in a fresh process")
            clip = os.path.join(tmp, f"clip-{count}.mp4")
            write_clip(clip, count, height, width, cut=count // 2)
            args = [clip, "-o", os.path.join(tmp, f"out-{count}"), "--model", run]
            peaks[count] = peak_rss("script", MEMORY_SCRIPT, args, os.path.join(tmp, f"log-{count}.txt"))
    return [
        figure(
            "video_memory", f"video peak memory, {long} frames",
            (f"peak RSS, {long} frames", peaks[long] / MB, "MB"), (f"peak RSS, {short} frames", peaks[short] / MB, "MB"),
            goal=("<=", 1.1),
            note=f"{width}x{height} H.264 clips with AAC audio, chunks of 240 frames, a stand-in embedder; each in a fresh process",
        )
    ]


def video_figures(sizes, log=print):
    """Both video figures (one registration in ``benchmarks.__main__.FIGURES``)."""
    return video_speed(sizes, log) + video_memory(sizes, log)


# -- the README's strip of frames ---------------------------------------------------------------------
def luminance_colorizer(dim, gain=(0.35, -0.3), bias=(0.1, 0.15)):
    """A tiny colorizer network (the real FusionLayer, then one 1x1 convolution) whose ab follows the
    luminance: a from bright, b from dark. Grain and exposure flicker make its colour flicker frame by
    frame, and two shots of different tones get different colours (what the video tests need)."""
    import keras

    from koalarization.model import network as model

    l = keras.Input((None, None, 1), name="l")
    embedding = keras.Input((dim,), name="embedding")
    conv = keras.layers.Conv2D(2, 1, activation="tanh", name="ab")
    network = keras.Model({"l": l, "embedding": embedding}, conv(model.FusionLayer()([l, embedding])))
    kernel = np.zeros((1, 1, 1 + dim, 2), np.float32)
    kernel[0, 0, 0] = gain
    kernel[0, 0, 1:] = np.random.default_rng(0).normal(0.0, 0.05, (dim, 2))
    conv.set_weights([kernel, np.array(bias, np.float32)])
    return network


def stand_in_embedder(dim):
    """Mean gray x a fixed (seeded) matrix: an embedder of Inception's interface, the same in every process."""
    import keras

    gray = keras.Input((299, 299, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(8)(gray))  # (B, 3)
    return keras.Model(gray, keras.layers.Dense(dim, kernel_initializer=keras.initializers.RandomNormal(seed=0))(pooled))


def write_strip(path, columns=(17, 18, 19, 20, 21, 22), height=96, width=128):
    """PNG: the luminance the network sees | colour frame by frame | steadied colour, for frames around a cut (20)."""
    from PIL import Image

    from koalarization.video import films
    from koalarization.model.colorizer import Colorizer

    colorizer = Colorizer.from_keras(luminance_colorizer(16), stand_in_embedder(16), 32)
    with tempfile.TemporaryDirectory(prefix="video-strip-") as tmp:
        clip = os.path.join(tmp, "clip.mp4")
        write_clip(clip, 24, height, width, cut=20, grain=2.0, exposure=0.05)
        rows = [[np.repeat(np.round(f @ np.float32([0.299, 0.587, 0.114]))[..., None].astype(np.uint8), 3, -1)
                 for i, (_, f) in enumerate(films.frames(films.probe(clip))) if i in columns]]  # fmt: skip
        for smoothing in (0.0, films.VideoConfig.smoothing):
            config = films.VideoConfig(inputs=(clip,), out_dir=os.path.join(tmp, f"out{smoothing}"), model="-", smoothing=smoothing)
            os.makedirs(config.out_dir)
            out = films.colorize_video(config, clip, colorizer, log=lambda _: None, progress=False)
            rows.append([f for i, (_, f) in enumerate(films.frames(films.probe(out))) if i in columns])
    gap = np.full((height, 2, 3), 255, np.uint8)
    lines = [np.concatenate([x for f in row for x in (f, gap)][:-1], axis=1) for row in rows]
    rule = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    strip = np.concatenate([x for line in lines for x in (line, rule)][:-1], axis=0)
    Image.fromarray(strip).save(path, optimize=True)
    return path


if __name__ == "__main__":
    import sys

    print(write_strip(sys.argv[1] if len(sys.argv) > 1 else "notebooks/figures/video_strip.png"))
