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

from benchmarks import figure, interleaved_medians

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
               rotation=None, pts=None, codec="libx264", seed=0):
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
            sound = container.add_stream("aac", rate=16000)
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
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return out
