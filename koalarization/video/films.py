"""Colorize films: video in, video out, with steady colour across frames (the library).

    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke          # -> colorized/film.mp4
    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke --resume # finish a killed run

The commands ``python -m koalarization.video`` and ``python -m koalarization.colorize film.mp4``
both run :func:`main` of this module (its parser is the film command's), so neither command
module imports the other.

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

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import fractions
import heapq
import json
import os
import shutil
import sys

import numpy as np

from koalarization import images, locks, options, safeio

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv")  # not .gif: a photo for colorize
HISTOGRAM_BINS = 32
MOTION_L = 12.0  # Lab L units of (blurred) change at which a pixel's ab is no longer smoothed
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1")
CONTAINER_OF = {"libvpx-vp9": ".webm", "libvpx": ".webm", "ffv1": ".mkv"}  # anything else: .mp4
STATE_VERSION = 1


class VideoError(ValueError):
    """A video that cannot be colorized; ``str()`` is one line naming the file and the reason."""


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    inputs: tuple  # video files
    out_dir: str
    model: str  # run dir, .keras file or SavedModel dir
    working_size: int | None = None
    batch_size: int = 8  # frames per network call
    chunk_frames: int = 240  # frames per finished chunk (the unit of --resume)
    smoothing: float = 0.8  # 0: every frame on its own; towards 1: steadier colour, slower to follow
    cut_threshold: float = 0.35  # luminance-histogram distance (0..1) that starts a new shot
    video_codec: str = "libx264"
    crf: int = 18
    resume: bool = False
    overwrite: bool = False
    inception_weights: str | None = None
    precision: str | None = None  # float32 | bfloat16 | auto; default float32 (a SavedModel: as exported)
    verbose: bool = False

    def settings(self):
        """What a chunk's pixels depend on: a --resume with other values starts over."""
        keys = ("model", "working_size", "chunk_frames", "smoothing", "cut_threshold", "video_codec", "crf", "inception_weights")
        precision = {"precision": self.precision} if self.precision else {}  # unset: as before, so old runs resume
        return {key: getattr(self, key) for key in keys} | {"model": os.path.realpath(self.model), "version": STATE_VERSION} | precision


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


# -- reading ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Probe:
    path: str
    frames: int  # video packets: the progress bar's total
    width: int  # as displayed (after the rotation)
    height: int
    rotation: int  # quarter turns counter-clockwise applied to each decoded frame (np.rot90's k)
    time_base: fractions.Fraction
    rate: fractions.Fraction
    audio: tuple  # indices of the audio streams (copied)
    codec: str
    audio_codecs: tuple = ()


def _open(path):
    import av

    try:
        return av.open(path)
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except av.error.EOFError:
        raise VideoError(f"{path}: no frames (the file ends before the first one)") from None
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: not a video FFmpeg can read ({_reason(error)})") from None


def _reason(error):
    return " ".join(str(getattr(error, "strerror", None) or error).split())[:160]


def probe(path):
    """Check a video before any work: one :class:`VideoError` line for anything that cannot be colorized."""
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream" + (" (audio only)" if container.streams.audio else ""))
        stream = container.streams.video[0]
        name = stream.codec_context.name if stream.codec_context else "unknown"
        try:
            av.codec.Codec(name, "r")
        except Exception:  # noqa: BLE001  (unknown codec: no decoder in this FFmpeg)
            what = "an unknown video codec" if name == "unknown" else f"the video codec '{name}'"
            raise VideoError(f"{path}: {what}: this FFmpeg build cannot decode it") from None
        frames = 0
        try:
            for packet in container.demux(stream):
                frames += packet.size > 0
        except av.error.FFmpegError:
            pass  # a truncated file: the frames before the damage are colorized (see frames())
        if not frames:
            raise VideoError(f"{path}: the video stream has no frames")
        audio = tuple(s.index for s in container.streams.audio)
        audio_codecs = tuple(s.codec_context.name if s.codec_context else "unknown" for s in container.streams.audio)
        time_base = stream.time_base or fractions.Fraction(1, 25)
        rate = stream.average_rate or stream.guessed_rate or fractions.Fraction(25)
    decoded = _decoded(path)
    first = next(decoded, None)
    decoded.close()
    if first is None:
        raise VideoError(f"{path}: no frame of the video stream ({name}) can be decoded (damaged or truncated)")
    turns = round((first.rotation or 0) / 90) % 4
    width, height = (first.width, first.height) if turns % 2 == 0 else (first.height, first.width)
    return Probe(path, frames, width, height, turns, time_base, rate, audio, name, audio_codecs)


def _decoded(path):
    """The video frames of ``path`` (PyAV frames), stopping quietly at damage (a truncated file)."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield frame
        except av.error.FFmpegError:
            return


def frames(probe_, start=0):
    """``(pts, rgb uint8 (H, W, 3) upright)`` for every frame from index ``start``; pts strictly increasing."""
    last = None
    for index, frame in enumerate(_decoded(probe_.path)):
        pts = frame.pts if frame.pts is not None else (last + 1 if last is not None else 0)
        pts = pts if last is None or pts > last else last + 1  # duplicates / missing: keep the order
        last = pts
        if index < start:
            continue
        rgb = frame.to_ndarray(format="rgb24").copy()  # (h, w, 3) as stored; a copy: PyAV's is a view of a reused buffer
        yield pts, np.ascontiguousarray(np.rot90(rgb, probe_.rotation)) if probe_.rotation else rgb


# -- steady colour ---------------------------------------------------------------------------------
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


# -- writing -----------------------------------------------------------------------------------------
def pixel_format(codec, width, height):
    """yuv420p when both sides are even (what every player plays), else yuv444p (odd sizes kept)."""
    import av

    try:
        formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or [])]
    except Exception:  # noqa: BLE001
        raise VideoError(f"--video-codec {codec}: no such video encoder in this FFmpeg build") from None
    even = width % 2 == 0 and height % 2 == 0
    for candidate in (("yuv420p", "yuv444p") if even else ("yuv444p",)):
        if not formats or candidate in formats:
            return candidate
    if even or not formats:
        return formats[0]
    raise VideoError(f"--video-codec {codec}: cannot encode the odd size {width}x{height}; use libx264 (yuv444p)")


class Segment:
    """One chunk's video file, encoded frame by frame; ``close()`` finishes it, then it is renamed.

    The encoder runs on a thread of its own (the ``ENCODER`` pool), never on one that TensorFlow's
    ops run on: there, x264 gave other bytes for the same frames from one run to the next (most
    likely TensorFlow's floating-point mode, e.g. flush-to-zero, left on the thread), so a resumed
    film did not equal an unkilled one. It also encodes while the network runs. Each chunk starts a
    new encoder, so what a resumed chunk gets is the same frames as an unkilled run's; x264's bytes
    for them are its own (at --crf 18 they varied now and then on 48x64 test frames under CPU load,
    single-threaded; --crf 0 gives back exactly the frames).
    """

    def __init__(self, path, probe_, config, container_format):
        self.pending = collections.deque()
        self.time_base = probe_.time_base
        self._run(self._open, path, probe_, config, container_format).result()

    def _run(self, *call):
        return ENCODER.submit(*call)

    def _open(self, path, probe_, config, container_format):
        import av
        from av.video.reformatter import ColorRange, Colorspace

        self.container = av.open(path, "w", format=container_format)
        stream = self.container.add_stream(config.video_codec, rate=probe_.rate)
        stream.width, stream.height = probe_.width, probe_.height
        stream.pix_fmt = pixel_format(config.video_codec, probe_.width, probe_.height)
        stream.time_base = stream.codec_context.time_base = probe_.time_base
        stream.codec_context.colorspace, stream.codec_context.color_range = 6, 1  # BT.601 (smpte170m), limited: as converted
        if config.video_codec in CRF_CODECS:
            stream.options = {"crf": str(config.crf)} | ({"b": "0"} if "vpx" in config.video_codec else {})
        self.stream, self.av = stream, av
        self.convert = dict(  # a stream whose frames change size mid-way is scaled to its first frame's
            width=probe_.width, height=probe_.height, format=stream.pix_fmt, dst_colorspace=Colorspace.ITU601, dst_color_range=ColorRange.MPEG
        )

    def _encode(self, pts, rgb):
        rgb = rgb.result() if isinstance(rgb, concurrent.futures.Future) else rgb  # a frame being recombined
        frame = self.av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(**self.convert)
        frame.pts, frame.time_base = pts, self.time_base
        self.container.mux(self.stream.encode(frame))

    def write(self, pts, rgb):
        """Queue a frame (uint8 (H, W, 3), or the future of one); at most ``ENCODE_AHEAD`` wait, so memory stays bounded."""
        self.pending.append(self._run(self._encode, pts, rgb))
        while len(self.pending) > ENCODE_AHEAD or (self.pending and self.pending[0].done()):
            self.pending.popleft().result()  # an encoder error surfaces here

    def _close(self):
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def close(self):
        while self.pending:
            self.pending.popleft().result()
        self._run(self._close).result()

    def abandon(self):
        """Stop without finishing (Ctrl-C): the file is left for the caller to remove."""
        for future in self.pending:
            future.cancel()
        with contextlib.suppress(Exception):
            self._run(self.container.close).result()


ENCODE_AHEAD = 16  # frames queued for the encoder at most
ENCODER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="koalarization-encoder")
RECOMBINER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="koalarization-recombine")


def _format_of(path):
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}[os.path.splitext(path)[1]]


def assemble(segments, probe_, out_path, end=None):
    """The final file: the chunks' video packets and the input's audio packets, interleaved by time,
    written under a temporary name and renamed. ``end``: audio after this time (seconds) is left out."""
    import av

    with safeio.atomic_path(out_path) as tmp:
        opened = [av.open(path) for path in segments]
        source = av.open(probe_.path)
        try:
            output = av.open(tmp, "w", format=_format_of(out_path))
            video = output.add_stream_from_template(opened[0].streams.video[0])
            audio_in = [source.streams[i] for i in probe_.audio]
            try:
                audio_out = {s.index: output.add_stream_from_template(s) for s in audio_in}
            except ValueError as error:
                raise VideoError(f"{probe_.path}: its audio cannot be copied into {os.path.basename(out_path)} ({error}); choose another --video-codec/container") from None

            def video_packets():
                for container in opened:
                    for packet in container.demux(container.streams.video[0]):
                        if packet.size:
                            packet.stream = video
                            yield packet

            def audio_packets():
                for packet in source.demux(audio_in) if audio_in else ():
                    if packet.size and (end is None or packet.pts is None or packet.pts * packet.time_base < end):
                        packet.stream = audio_out[packet.stream_index]
                        yield packet

            def when(packet):
                stamp = packet.dts if packet.dts is not None else packet.pts
                return float(stamp * packet.time_base) if stamp is not None else 0.0

            for packet in heapq.merge(video_packets(), audio_packets(), key=when):
                output.mux(packet)
            output.close()
        finally:
            source.close()
            for container in opened:
                container.close()


# -- the command -----------------------------------------------------------------------------------
def output_path(config, path, info=None):
    """``OUTDIR/STEM.mp4`` (or the codec's container); ``.mkv`` or ``.mov`` when ``info``'s audio cannot go in it."""
    ext = CONTAINER_OF.get(config.video_codec, ".mp4")
    if info is not None and not _holds(ext, info.audio_codecs):
        fits = [other for other in (".mkv", ".mov") if _holds(other, info.audio_codecs)]
        if not fits:
            raise VideoError(f"{path}: its audio ({', '.join(info.audio_codecs)}) fits in no container this command writes")
        ext = fits[0]
    return os.path.join(config.out_dir, os.path.splitext(os.path.basename(path))[0] + ext)


def _holds(ext, audio_codecs):
    import av

    if not audio_codecs:
        return True
    with av.open(os.devnull, "w", format=_format_of("x" + ext)) as container:
        return set(audio_codecs) <= container.supported_codecs


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
        raise ValueError("--chunk-frames and --batch-size must be at least 1")
    if not 0.0 <= config.smoothing < 1.0:
        raise ValueError(f"--smoothing {config.smoothing}: must be in [0, 1)")
    safeio.check_output_dir(config.out_dir)
    from koalarization.model.colorizer import Colorizer, resolve_model

    resolve_model(config.model)
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m koalarization.video", description="Colorize videos: same size, frame rate, frames and audio; steady colour within each shot.")
    parser.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files (any container and codec FFmpeg reads)")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for the colorized videos (created if needed)")
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    options.add_working_size(parser, "the network runs at; the output keeps the input size")
    parser.add_argument("--batch-size", type=int, default=VideoConfig.batch_size, help="frames per network call (default %(default)s)")
    parser.add_argument("--chunk-frames", type=int, default=VideoConfig.chunk_frames, help="frames per finished chunk, the unit --resume restarts from (default %(default)s)")
    parser.add_argument("--smoothing", type=float, default=VideoConfig.smoothing, help="weight of the past in the colour's moving average within a shot, 0..1 (0: frame by frame; default %(default)s)")
    parser.add_argument("--cut-threshold", type=float, default=VideoConfig.cut_threshold, help="luminance-histogram distance (0..1) between two frames that counts as a shot cut (default %(default)s)")
    parser.add_argument("--video-codec", default=VideoConfig.video_codec, help="FFmpeg video encoder (default %(default)s, in .mp4; libvpx-vp9 -> .webm, ffv1 -> .mkv)")
    parser.add_argument("--crf", type=int, default=VideoConfig.crf, help="quality for libx264/libx265/libvpx-vp9 (lower is better; default %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last finished chunk")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them and say so)")
    parser.add_argument("--inception-weights", help=options.INCEPTION_WEIGHTS_HELP)
    options.add_precision(parser)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = options.check(parser, parser.parse_args(argv))
    photos = [path for path in args.inputs if os.path.splitext(path)[1].lower() in images.IMAGE_EXTENSIONS]
    if photos:
        parser.error(f"{photos[0]}: a photo; colorize photos (python -m koalarization.colorize) and films in separate commands")
    return VideoConfig(**{**vars(args), "inputs": tuple(args.inputs)})


def main(argv=None, inception=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        written, failed = colorize_videos(config, inception=inception)
    except safeio.SafeIOError as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.exit_status(error, default=1)
    except KeyboardInterrupt:
        return safeio.EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001  -- model and weights errors: one line, no traceback
        from koalarization.model import inception as embedding

        if not isinstance(error, (ValueError, embedding.WeightsUnavailableError, FileNotFoundError)):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if written else 1

