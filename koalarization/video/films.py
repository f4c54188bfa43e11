"""Colorize films: video in, video out, with steady colour across frames (the library).

    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke          # -> colorized/film.mp4
    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke --resume # finish a killed run

The commands ``python -m koalarization.video`` and ``python -m koalarization.colorize film.mp4``
both parse a :class:`koalarization.video.config.VideoConfig` and call :func:`run`. The container
side (probe, decode, encode, mux) is :mod:`koalarization.video.stream`.

Each frame goes through the photos' method (:class:`koalarization.model.colorizer.Colorizer`: the same
object and steps: luminance and letterbox, Inception embedding, network, un-letterbox, upsampling,
recombination with the frame's full-resolution luminance). Between those steps, within a shot,
the colour is steadied over time:

- the Inception embedding is an exponential moving average (weight ``--smoothing``) of the frames';
- the predicted ab (at the working size) too, per pixel, with the weight shrunk to 0 where the
  luminance moved by ``MOTION_L`` Lab units or more (3x3-blurred, after the frame's mean gain, so
  an exposure flicker is not motion): moving things keep their own colour;
- at a shot cut both restart from the new frame: a cut is a luminance-histogram distance (half
  the L1 distance of 32-bin histograms, 0..1) over ``--cut-threshold`` between consecutive frames.

The output has the input's size (as displayed: a rotation tag is applied to the pixels), frame
count and every frame's timestamp (so frame rate, duration and variable frame rates are kept);
every audio stream is copied packet for packet. H.264 (libx264, ``--crf 18``) in MP4 by default,
yuv420p, or yuv444p when a side is odd (4:2:0 needs even sizes; the size is kept, not padded).

Streaming: frames are decoded, colorized in batches and encoded into chunk files of
``--chunk-frames`` frames in ``OUTDIR/.NAME.work/`` (each written under a temporary name and
renamed whole, with the smoothing state at its end beside it); the final file is remuxed from the
chunks and the input's audio and renamed into place. Memory does not depend on the film's length.
Ctrl-C keeps the finished chunks (and writes ``NAME.partial.mp4`` from them); ``--resume`` goes
on from the last finished chunk and gives the same file as an unkilled run. Exit status: 0 done
(or already there), 1 a video that cannot be colorized (one line why), 2 bad command line or
model, 3 output folder unusable, 4 the same output in use by another run, 130 Ctrl-C.
"""

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import sys

import numpy as np

from koalarization import cli, errors, locks, safeio
from koalarization.video.config import STATE_VERSION, VIDEO_EXTENSIONS, VideoConfig, is_video  # noqa: F401  (the config run takes)
from koalarization.video.stream import (  # noqa: F401  (frames and probe: for the notebooks and the tests)
    Segment,
    VideoError,
    _format_of,
    assemble,
    frames,
    output_path,
    pixel_format,
    probe,
)

HISTOGRAM_BINS = 32
MOTION_L = 12.0  # Lab L units of (blurred) change at which a pixel's ab is no longer smoothed
RECOMBINER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="koalarization-recombine")


def histogram(rgb):
    """uint8 (H, W, 3) -> normalized histogram (HISTOGRAM_BINS,) of its luma (every 2nd pixel)."""
    luma = rgb[::2, ::2].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    counts = np.bincount(np.minimum((luma * (HISTOGRAM_BINS / 256.0)).astype(np.int64), HISTOGRAM_BINS - 1).ravel(), minlength=HISTOGRAM_BINS)
    return counts / max(counts.sum(), 1)


def cut_distance(previous, current):
    """Half the L1 distance of two histograms: 0 same tones, 1 nothing in common."""
    return 0.0 if previous is None else float(0.5 * np.abs(previous - current).sum())


@dataclasses.dataclass
class Steady:
    """The smoothing state carried from frame to frame (and saved with each chunk)."""

    histogram: np.ndarray | None = None  # (BINS,) of the last frame
    embedding: np.ndarray | None = None  # (D,) smoothed
    l: np.ndarray | None = None  # (S, S, 1) scaled luminance of the last frame
    ab: np.ndarray | None = None  # (S, S, 2) smoothed, scaled

    def save(self, path):
        arrays = {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, np.ndarray)}
        with safeio.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(**{key: data[key] for key in data.files})


def _blurred_change(l, previous):
    """|L - gain x previous L| (Lab units; gain: the ratio of the frames' mean L, so an exposure
    flicker is not motion), averaged over 3x3: (B, S, S, 1)."""
    import tensorflow as tf

    now, before = (l + 1.0) * 50.0, (previous + 1.0) * 50.0  # Lab L (scaled l is L/50 - 1)
    gain = tf.reduce_mean(now, axis=(1, 2, 3), keepdims=True) / tf.maximum(tf.reduce_mean(before, axis=(1, 2, 3), keepdims=True), 1e-3)
    return tf.nn.avg_pool2d(tf.abs(now - gain * before), 3, 1, "SAME").numpy()


def colorize_batch(colorizer, rgbs, state, smoothing, cut_threshold, recombine=None):
    """uint8 frames -> uint8 colorized frames, steadied with ``state`` (updated in place).

    The photos' steps of ``colorizer`` (its compiled ``prepare``, networks and ``recombine``), with
    the embedding and ab smoothed between them. ``recombine``: ``(colorizer, ab, rgb) -> frame``
    (default :func:`recombined`); the film command passes one that runs it on the ``RECOMBINER``
    thread and returns its future, so that the next batch's networks run meanwhile.
    """
    import tensorflow as tf

    tensors = [tf.convert_to_tensor(rgb, tf.float32) / 255.0 for rgb in rgbs]  # (H, W, 3) each
    pairs = [colorizer.prepare(rgb) for rgb in tensors]  # the photos' compiled step
    l = tf.stack([p[0] for p in pairs])  # (B, S, S, 1)
    embeddings = colorizer.embed(tf.stack([p[1] for p in pairs])).numpy()  # (B, D)
    fresh = []
    for i, rgb in enumerate(rgbs):
        current = histogram(rgb)
        cut = state.histogram is None or cut_distance(state.histogram, current) > cut_threshold
        state.histogram = current
        if cut:
            state.embedding = embeddings[i]
        else:
            state.embedding = smoothing * state.embedding + (1.0 - smoothing) * embeddings[i]
        embeddings[i] = state.embedding
        fresh.append(cut)
    ab = colorizer.predict_ab(l, tf.convert_to_tensor(embeddings)).numpy()  # (B, S, S, 2)
    l = l.numpy()
    previous = np.concatenate([state.l[None] if state.l is not None else l[:1], l[:-1]])  # (B, S, S, 1)
    weights = smoothing * np.clip(1.0 - _blurred_change(l, previous) / MOTION_L, 0.0, 1.0)  # (B, S, S, 1)
    for i in range(len(rgbs)):
        if not fresh[i]:
            ab[i] = weights[i] * state.ab + (1.0 - weights[i]) * ab[i]
        state.ab = ab[i]
    state.l = l[-1]
    recombine = recombine or recombined
    return [recombine(colorizer, ab[i], rgb) for i, rgb in enumerate(tensors)]


def recombined(colorizer, ab, rgb):
    """One frame's smoothed ab (S, S, 2) + its sRGB (H, W, 3) -> the colorized uint8 frame (numpy)."""
    return colorizer.recombine(ab, rgb).numpy()


def recombined_later(colorizer, ab, rgb):
    """:func:`recombined` on the ``RECOMBINER`` thread -> its future (a :class:`Segment` takes either)."""
    return RECOMBINER.submit(recombined, colorizer, ab, rgb)


# -- films ----------------------------------------------------------------------------------------
def colorize_video(config, path, colorizer, log=print, progress=True, info=None):
    """Colorize one video file into ``config.out_dir``; returns the output path (see the module docstring)."""
    from tqdm import tqdm

    info = info or probe(path)
    out = output_path(config, path, info)
    ext = os.path.splitext(out)[1]
    if out != output_path(config, path):
        log(f"{path}: its audio ({', '.join(info.audio_codecs)}) cannot be copied into {output_path(config, path)}; writing {out}")
    pixel_format(config.video_codec, info.width, info.height)  # an unusable codec is said before any work
    work = os.path.join(config.out_dir, f".{os.path.basename(out)}.work")
    with locks.DirLock(work, "koalarization.video", warn=log):
        state_file = os.path.join(work, "state.json")
        facts = {"input": _identity(path), "settings": config.settings()}
        done = _finished_chunks(work, ext) if config.resume and _same(state_file, facts) else 0
        if not done:
            if config.resume and os.path.exists(state_file):
                log(f"{path}: the unfinished run was for another input or settings; starting over")
            for name in os.listdir(work):
                if name != DIR_LOCK:
                    _remove(os.path.join(work, name))
            safeio.write_json(state_file, facts)
        else:
            log(f"{path}: resuming after {done} finished chunk(s) ({done * config.chunk_frames} frames)")
        safeio.clean_temporaries(work)
        state = Steady.load(_state_path(work, done - 1)) if done else Steady()
        start = done * config.chunk_frames
        if info.rotation:
            log(f"{path}: rotation tag of {info.rotation * 90} degrees applied: the output is {info.width}x{info.height}, upright")
        bar = tqdm(total=info.frames, initial=min(start, info.frames), desc=os.path.basename(path), unit="frame", file=sys.stderr, disable=None if progress else True)
        chunk, segment, batch = done, None, []
        try:
            for index, (pts, rgb) in enumerate(frames(info, start), start=start):
                if segment is None:
                    segment_tmp = safeio.temporary_name(_chunk_path(work, chunk, ext))
                    segment = Segment(segment_tmp, info, config, _format_of(out))
                batch.append((pts, rgb))
                last_of_chunk = (index + 1) % config.chunk_frames == 0
                if len(batch) == config.batch_size or last_of_chunk:
                    _write_batch(colorizer, segment, batch, state, config)
                    bar.update(len(batch))
                    batch = []
                if last_of_chunk:
                    _finish_chunk(segment, segment_tmp, work, chunk, ext, state)
                    chunk, segment = chunk + 1, None
            if batch:
                _write_batch(colorizer, segment, batch, state, config)
                bar.update(len(batch))
            if segment is not None:
                _finish_chunk(segment, segment_tmp, work, chunk, ext, state)
                chunk += 1
        except KeyboardInterrupt:
            bar.close()
            if segment is not None:  # the chunk being written is dropped
                segment.abandon()
                with contextlib.suppress(OSError):
                    os.remove(segment_tmp)
            _keep_partial(work, ext, info, out, log)
            raise
        bar.close()
        if not chunk:
            raise VideoError(f"{path}: no frame could be decoded")
        assemble([_chunk_path(work, i, ext) for i in range(chunk)], info, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


DIR_LOCK = locks.DirLock.NAME


def _write_batch(colorizer, segment, batch, state, config):
    colorized = colorize_batch(colorizer, [rgb for _, rgb in batch], state, config.smoothing, config.cut_threshold, recombined_later)
    for (pts, _), frame in zip(batch, colorized):
        segment.write(pts, frame)


def _finish_chunk(segment, segment_tmp, work, chunk, ext, state):
    segment.close()
    state.save(_state_path(work, chunk))  # first the state, then the chunk: a chunk on disk always has its state
    os.replace(segment_tmp, _chunk_path(work, chunk, ext))


def _keep_partial(work, ext, info, out, log):
    done = _finished_chunks(work, ext)
    if not done:
        log(f"stopped: no chunk finished yet; nothing written ({out} not created)")
        return
    segments = [_chunk_path(work, i, ext) for i in range(done)]
    partial = os.path.splitext(out)[0] + ".partial" + ext
    import av

    with av.open(segments[-1]) as last:
        end = max(float((p.pts + (p.duration or 0)) * p.time_base) for p in last.demux(last.streams.video[0]) if p.size)
    assemble(segments, info, partial, end=end)
    log(f"stopped: {done} finished chunk(s) kept in {partial}; run the same command with --resume to finish {out}")


def _chunk_path(work, i, ext):
    return os.path.join(work, f"chunk-{i:05d}{ext}")


def _state_path(work, i):
    return os.path.join(work, f"chunk-{i:05d}.state.npz")


def _finished_chunks(work, ext):
    count = 0
    while os.path.isfile(_chunk_path(work, count, ext)) and os.path.isfile(_state_path(work, count)):
        count += 1
    return count


def _identity(path):
    stat = os.stat(path)
    return {"path": os.path.realpath(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _same(state_file, facts):
    try:
        return safeio.read_json(state_file, "video work state") == json.loads(json.dumps(facts))
    except safeio.DamagedFileError:
        return False


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


def colorize_videos(config, inception=None, log=print, progress=True):
    """Every video of ``config.inputs``; returns ``(written, failed)``: output paths and ``(input, reason)``."""
    if config.chunk_frames < 1 or config.batch_size < 1:
        raise errors.UsageError("--chunk-frames and --batch-size must be at least 1")
    if not 0.0 <= config.smoothing < 1.0:
        raise errors.UsageError(f"--smoothing {config.smoothing}: must be in [0, 1)")
    safeio.check_output_dir(config.out_dir)
    from koalarization.model.colorizer import Colorizer, resolve_model

    resolve_model(config.model)
    if not any(os.path.lexists(path) for path in config.inputs):  # a missing input, as in every command
        raise VideoError(f"{config.inputs[0]}: no such file" + (f" (and {len(config.inputs) - 1} more missing)" if len(config.inputs) > 1 else ""))
    written, failed, todo, taken = [], [], [], {}
    inputs = {os.path.realpath(path): path for path in config.inputs}

    def skip(path, reason):
        failed.append((path, reason))
        log(f"skipped {reason}")

    for path in config.inputs:
        try:
            out = output_path(config, path)
            if not (os.path.exists(out) and not config.overwrite):
                info = probe(path)
                out = output_path(config, path, info)
            if os.path.realpath(out) in inputs or any(safeio.same_file(out, other) for other in config.inputs):
                video = inputs.get(os.path.realpath(out), path)
                raise VideoError(f"{path}: its output {out} would be written over the input {video}; colorize it into another folder (-o)")
            if os.path.realpath(out) in taken:
                raise VideoError(f"{path}: its output {out} is also {taken[os.path.realpath(out)]}'s; colorize it into another folder")
            taken[os.path.realpath(out)] = path
            if os.path.exists(out) and not config.overwrite:
                log(f"kept {out}: already exists (pass --overwrite to replace it)")
                written.append(out)
            else:
                todo.append((path, info))
        except VideoError as error:
            skip(path, str(error))
    colorizer = Colorizer.load(config.model, inception, config.inception_weights, config.working_size, log, precision=config.precision) if todo else None
    for path, info in todo:
        try:
            written.append(colorize_video(config, path, colorizer, log, progress, info))
            log(f"colorized {path} -> {written[-1]}")
        except VideoError as error:
            skip(path, str(error))
    return written, failed


def run(config, inception=None):
    """The film command (``python -m koalarization.video``): every video of ``config``; the exit
    status: 0 when one was colorized or already there, 1 when none could be (each named)."""
    print(json.dumps(dataclasses.asdict(config)))
    try:
        written, _ = colorize_videos(config, inception=inception)
    except KeyboardInterrupt:
        raise errors.Interrupted(
            f"interrupted: the finished chunks in {config.out_dir} are kept (and NAME.partial.* from them); "
            "run the same command with --resume to go on"
        ) from None
    return 0 if written else 1


main = cli.command(VideoConfig, run)  # main(argv=None, inception=None): the command line -> its exit status
