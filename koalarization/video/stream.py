"""The container side of :mod:`koalarization.video.films`: probing a video, decoding its frames,
encoding chunk files (:class:`Segment`) and muxing the final file from the chunks and the input's
audio (:func:`assemble`), with PyAV (FFmpeg). No colour here: the frames go in and out as uint8 RGB.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import fractions
import heapq
import os

import numpy as np

from koalarization import errors, safeio

CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1")
CONTAINER_OF = {"libvpx-vp9": ".webm", "libvpx": ".webm", "ffv1": ".mkv"}  # anything else: .mp4


class VideoError(errors.UsageError):
    """A video that cannot be colorized; ``str()`` is one line naming the file and the reason."""


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


# -- output names -----------------------------------------------------------------------------------
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
