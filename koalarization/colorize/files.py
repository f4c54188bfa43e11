"""Colorizing files and folders into an output folder: the work of ``python -m koalarization.colorize``
(see that module for the behaviour), as a library for the CLI, the demo and the notebooks.

Output names are planned from the whole input set and the output folder checked before any model
is loaded; the model is a :class:`koalarization.model.colorizer.Colorizer`. Light to import: TensorFlow
comes with the colorizer, after the paths are checked. Inputs and the output folder may be URLs
(``gs://...``: :mod:`koalarization.storage`, through ``tf.io.gfile``); ``--model`` and hints stay local.
"""


import dataclasses
import json
import os
import re
import sys

from koalarization import cli, errors, images, safeio, storage
from koalarization.colorize import config
from koalarization.colorize.config import ColorizeConfig  # noqa: F401  (the config colorize_files takes)

COMPARE_SUFFIX = "_compare"
OLD_TEMPORARY = re.compile(r".+\.png\.tmp$")  # what versions before safeio left after a kill


@dataclasses.dataclass
class Summary:
    colorized: list = dataclasses.field(default_factory=list)  # output paths written
    existing: list = dataclasses.field(default_factory=list)  # outputs kept as they were
    failed: list = dataclasses.field(default_factory=list)  # (input path, reason)
    hints: dict = dataclasses.field(default_factory=dict)  # input path -> its checked colour hints (--hint, --hints)


# -- files -----------------------------------------------------------------------------------------
def plan_outputs(inputs, out_dir, compare=False):
    """``(jobs, missing, films)``: jobs are ``(input path, output stem under out_dir)``; missing ``(input,
    reason)``; films the video files found in the input folders (outside ``out_dir``), which are not photos.

    Names come from the whole set (sorted), so they do not depend on argument order: stems that
    collide (``a.jpg``, ``a.png``) all keep their extension (``a-jpg``, ``a-png``); with ``compare``,
    an input named like another's panel (``x_compare.png`` beside ``x.png``) keeps its extension too.
    """
    found, missing, passed_over = {}, [], []
    out_real = storage.real(out_dir)
    for item in inputs:
        try:
            paths = images.find_images([item], others=passed_over)
        except FileNotFoundError as error:  # "ITEM: reason"
            missing.append((item, str(error).removeprefix(f"{item}: ")))
            continue
        for path in paths:
            if storage.real(path).startswith(out_real + os.sep):
                if not storage.isdir(item):  # named (or matched) itself: say why it is not done
                    missing.append((path, f"it is inside the output folder {out_dir}, whose files are never colorized again; choose another -o"))
                continue  # never colorize our own outputs
            relative = storage.relpath(path, item) if storage.isdir(item) else os.path.basename(path)
            found.setdefault(storage.real(path), (path, relative))
    entries = sorted(found.values(), key=lambda entry: (entry[1], entry[0]))
    stems = [os.path.splitext(relative)[0] for _, relative in entries]
    with_ext = [f"{stem}-{os.path.splitext(rel)[1].lstrip('.').lower() or 'noext'}" for stem, (_, rel) in zip(stems, entries)]
    counts = _counts(stem.lower() for stem in stems)
    names = [full if counts[stem.lower()] > 1 else stem for stem, full in zip(stems, with_ext)]
    if compare:
        plain = {name.lower() for name in names}
        names = [
            full if name.endswith(COMPARE_SUFFIX) and name[: -len(COMPARE_SUFFIX)].lower() in plain else name
            for name, full in zip(names, with_ext)
        ]
    taken, jobs = set(), []
    for (path, _), name in zip(entries, names):
        candidate, n = name, 2
        while candidate.lower() in taken:  # what is left: a file really named a-jpg.png beside a.jpg and a.png
            candidate, n = f"{name}-{n}", n + 1
        taken.add(candidate.lower())
        jobs.append((path, candidate))
    from koalarization.video import films

    videos = sorted(path for path in passed_over if films.is_video(path) and not storage.real(path).startswith(out_real + os.sep))
    return jobs, missing, videos


def _say_videos_left_out(videos, log):
    """Films inside the folders colorize was given are not colorized with its photos: say so."""
    if videos:
        more = f" and {len(videos) - 1} more" if len(videos) > 1 else ""
        log(f"left out {videos[0]}{more}: films in a folder are not colorized with its photos; name each film "
            "(python -m koalarization.colorize FILM -o DIR --model ...)")  # fmt: skip


def _counts(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}  # --format -> file extension
ENCODE_WORKERS = 2  # threads that recombine and encode beside the networks
DECODE_WORKERS = 2  # threads that decode the next photos (started before the model loads)


def encode(image, fmt="png", quality=90, png_compression=1):
    """uint8 (H, W, 3) (numpy or tensor) -> file bytes: PNG (zlib ``png_compression``, lossless),
    JPEG or WebP at ``quality``. PNG is :mod:`koalarization.pngfile`'s (half the CPU time of
    TensorFlow's, which ``serving_default`` uses: the same pixels, other bytes); JPEG TensorFlow's."""
    import numpy as np

    if fmt == "png":
        from koalarization import pngfile

        return pngfile.encode_png(np.asarray(image), png_compression)
    import tensorflow as tf

    if fmt == "jpg":
        return tf.io.encode_jpeg(image, quality=quality, optimize_size=False).numpy()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()


def _save(image, path, inputs_real, config):
    """Write ``image`` (uint8 (H, W, 3), numpy or tensor) to ``path`` atomically in ``config.format``; never over one of the inputs."""
    storage.makedirs(os.path.dirname(path) or ".")
    if storage.real(path) in inputs_real or (storage.exists(path) and any(safeio.same_file(path, s) for s in inputs_real)):
        raise safeio.OutputPathError(f"{path}: is one of the inputs (through a link); not overwritten")
    safeio.write_bytes(path, encode(image, config.format, config.quality, config.png_compression))


def _header_pixels(path):
    """Width x height from the file's header (Pillow opens lazily), 0 when it cannot be read (the decoder says why)."""
    from PIL import Image

    try:
        with storage.open(path, "rb") as f, Image.open(f) as image:  # a URL's too
            return image.size[0] * image.size[1]
    except Exception:  # noqa: BLE001  -- reported when decoded
        return 0


def _displayed_size(path):
    """(width, height) of the photo as displayed (its EXIF orientation applied), from its header; None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(images.EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001  -- reported when decoded
        return None
    return (height, width) if turned else (width, height)


def plan_hints(config, jobs):
    """``--hint`` / ``--hints FILE`` -> ``{input path: checked points}``, each checked against its photo's
    header size; one-line UsageError for a bad hint, a name the file gives that matches no photo, or
    ``--hint`` with more than one photo. Nothing is loaded or written before this."""
    from koalarization import hintspec
    from koalarization.errors import UsageError

    if not config.hint and not config.hints:
        return {}
    if config.hint and config.hints:
        raise UsageError("--hint and --hints: give the hints of one photo with --hint, or of several in a --hints file, not both")
    if config.hint:
        if len(jobs) != 1:
            raise UsageError(f"--hint is for one photo and {len(jobs)} were given; put several photos' hints in a --hints FILE.json")
        wanted = {jobs[0][0]: [hintspec.parse_hint(text) for text in config.hint]}
    else:
        by_name, wanted = hintspec.read_hints_file(config.hints), {}
        folders = [item for item in config.inputs if os.path.isdir(item)]
        for path, _ in jobs:
            names = [path, os.path.normpath(path), os.path.basename(path)]
            names += [os.path.relpath(path, f) for f in folders if os.path.realpath(path).startswith(os.path.realpath(f) + os.sep)]
            found = [name for name in names if name in by_name]
            if found:
                wanted[path] = by_name.pop(found[0])
        if by_name:
            raise UsageError(f"{config.hints}: no photo among the inputs is named {sorted(by_name)[0]!r}"
                             + (f" (nor {len(by_name) - 1} other names)" if len(by_name) > 1 else ""))  # fmt: skip
    for path, points in wanted.items():
        size = _displayed_size(path)
        if size is not None:
            hintspec.check_points(points, *size, name=path)
    return {path: points for path, points in wanted.items() if points}


def plan_work(config, log=print):
    """``(summary, todo, inputs_real)``: the outputs to write (``(input path, output path without extension)``),
    with the inputs that are missing, kept (existing outputs) or refused already in ``summary``.
    Checks the output folder and the model's path first (:class:`safeio.OutputPathError`, ``ValueError``)."""
    if config.batch_size < 1:
        raise errors.UsageError(f"--batch-size {config.batch_size}: must be at least 1")
    if config.format not in FORMATS:
        raise errors.UsageError(f"--format {config.format}: choose from {', '.join(FORMATS)}")
    input_folders = [item for item in config.inputs if storage.isdir(item)]
    safeio.check_output_dir(config.out_dir, input_folders)
    from koalarization.model.colorizer import resolve_model

    resolve_model(config.model)  # a missing or unusable --model is said before anything else
    ext = FORMATS[config.format]
    jobs, missing, videos = plan_outputs(config.inputs, config.out_dir, config.compare)
    if not jobs and not videos and not missing:  # as the builder and evaluate say it: status 2
        raise errors.UsageError(f"{' '.join(config.inputs)}: no image files found")
    if missing and not jobs and not videos and all(not (storage.exists if storage.is_url(item) else os.path.lexists)(item) for item in config.inputs):  # a missing input: 2
        raise errors.UsageError(f"{missing[0][0]}: {missing[0][1]}" + (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""))
    hints = plan_hints(config, jobs)  # a bad hint: one line before anything is loaded
    if hints and getattr(config, "beam_pipeline_options", None):
        raise errors.UsageError("--hint/--hints: not with --beam-pipeline-options yet; colorize hinted photos without Beam")
    summary = Summary(failed=list(missing), hints=hints)
    for path, reason in missing:
        log(f"skipped {path}: {reason}")
    _say_videos_left_out(videos, log)
    inputs_real = {storage.real(path) for path, _ in jobs}
    todo = []
    for path, stem in jobs:
        out = os.path.join(config.out_dir, stem)
        if storage.real(out + ext) in inputs_real or (config.compare and storage.real(out + COMPARE_SUFFIX + ext) in inputs_real):
            summary.failed.append((path, f"its output {out}{ext} is one of the inputs (through a link); not overwritten"))
            log(f"skipped {path}: its output {out}{ext} is one of the inputs (through a link); not overwritten")
        elif storage.exists(out + ext) and not config.overwrite:
            summary.existing.append(out + ext)
            log(f"kept {out}{ext}: already exists (pass --overwrite to replace it)")
        else:
            todo.append((path, out))
    if not todo and not jobs and not summary.failed:
        log(f"nothing to colorize: no image files found in {' '.join(config.inputs)}")
    for folder in sorted({os.path.dirname(out) for _, out in todo}):  # leftovers of a killed run
        safeio.clean_temporaries(folder, [OLD_TEMPORARY])
    return summary, todo, inputs_real


def colorize_files(config, inception=None, log=print, colorizer=None):
    """Colorize every image of ``config.inputs`` into ``config.out_dir``; returns a :class:`Summary`.

    ``colorizer``: an already loaded :class:`~koalarization.model.colorizer.Colorizer` (then ``config.model``
    only names it); ``inception``: an already built embedder for loading ``config.model``.
    Paths are planned and checked (:func:`safeio.check_output_dir`) before the model is loaded.
    Raises :class:`safeio.OutputPathError` for an output folder that cannot be used.

    Speed: the first photos are decoded while the model loads, then decoding runs ahead in
    ``DECODE_WORKERS`` threads and recombination + encoding in ``ENCODE_WORKERS`` threads, beside
    the networks; the first photo goes through alone, so it is out one network call after the
    model is ready (the progress line shows the model's loading time).
    """
    summary, todo, inputs_real = plan_work(config, log)
    if todo:
        load = lambda: colorizer or load_colorizer(config, inception, log)  # noqa: E731
        colorize_jobs(config, todo, load, summary, inputs_real, log)
    log(_summary_line(summary, config.out_dir))
    return summary


def load_colorizer(config, inception=None, log=print):
    """The :class:`~koalarization.model.colorizer.Colorizer` that ``config`` names (once per process, or per Beam worker)."""
    from koalarization.model.colorizer import Colorizer

    return Colorizer.load(config.model, inception, config.inception_weights, config.working_size, log, precision=config.precision)


def colorize_jobs(config, todo, load, summary, inputs_real, log=print):
    """Colorize ``todo`` (``(input path, output path without extension)``) with the colorizer ``load()``
    returns (called once the first photos are being decoded), adding to ``summary``. The work of
    both the local command and each Beam bundle (:mod:`koalarization.colorize.beam`)."""
    import time
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from koalarization.model.colorizer import BATCH_PIXELS

    ext = FORMATS[config.format]
    reader = ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="decode")
    waiting, ahead = deque(todo), deque()  # ahead: (job, pixels from the header, future)

    def read_ahead():  # decode up to a batch and a few photos ahead, and at most ~BATCH_PIXELS of them
        while waiting and (not ahead or (len(ahead) < config.batch_size + DECODE_WORKERS and sum(a[1] for a in ahead) < BATCH_PIXELS)):
            job = waiting.popleft()
            ahead.append((job, _header_pixels(job[0]), reader.submit(images.read_image, job[0], config.max_pixels, as_tensor=True)))

    def readable():
        while ahead:
            job, _, future = ahead.popleft()
            read_ahead()
            try:
                yield job, future.result()
            except images.ImageError as error:
                summary.failed.append((error.path, error.reason))
                progress.write(f"skipped {error}")
                progress.update()

    def finish(job, rgb, colorized):  # in an encoding thread
        _, out = job
        try:
            _save(colorized, out + ext, inputs_real, config)
            if config.compare:
                from koalarization import plots

                _save(plots.comparison_strip(rgb.numpy(), colorized.numpy()), out + COMPARE_SUFFIX + ext, inputs_real, config)
        except OSError as error:  # disk full, permission: nothing after this would work either
            raise safeio.OutputPathError(safeio.describe_os_error(out + ext, error)) from None
        return out + ext

    try:
        read_ahead()  # the first photos are decoded while the model loads
        start = time.perf_counter()
        colorizer = load()
        loaded = time.perf_counter() - start
        log(f"model ready in {loaded:.1f} s ({colorizer.source or config.model}); colorizing {len(todo)} image(s)")
        hints = summary.hints
        if hints:
            colorizer.require_hints()
        with tqdm(total=len(todo), desc="colorizing", unit="image", file=sys.stderr, disable=None) as progress:
            progress.set_postfix_str(f"model ready in {loaded:.1f} s", refresh=True)
            hints_of = (lambda job: (job[0], hints.get(job[0], []))) if hints else None
            stream = colorizer.colorize_stream(readable(), config.batch_size, finish=finish, workers=ENCODE_WORKERS, hints=hints_of)
            for (path, out), _, written in stream:
                if isinstance(written, Exception):
                    summary.failed.append((path, f"colorization failed: {written.__class__.__name__}"))
                    progress.write(f"skipped {path}: colorization failed ({written.__class__.__name__})")
                else:
                    summary.colorized.append(written)
                progress.update()
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
    return summary


def _summary_line(summary, out_dir):
    return f"colorized {len(summary.colorized)}, kept {len(summary.existing)} existing, failed {len(summary.failed)} -> {out_dir}"


def run(config, inception=None):
    """The command ``python -m koalarization.colorize``: print ``config`` as JSON, colorize; the
    exit status: 0 when at least one image was colorized or already done, 1 when none could be.
    A :class:`~koalarization.video.config.VideoConfig` (films) goes to :func:`koalarization.video.films.run`."""
    from koalarization.video.config import VideoConfig

    if isinstance(config, VideoConfig):
        from koalarization.video import films

        return films.run(config, inception=inception)
    if config.beam_pipeline_options is not None:
        from koalarization import beam_options

        beam_options.parse(config.beam_pipeline_options)  # a malformed string or unknown runner: one line, status 2
    print(json.dumps(dataclasses.asdict(config)))
    try:
        with safeio.removed_if_left_empty(config.out_dir):
            if config.beam_pipeline_options is not None:
                from koalarization.colorize import beam  # on Beam: the same work, split in chunks over its workers

                summary = beam.colorize(config)
            else:
                summary = colorize_files(config, inception=inception)
    except KeyboardInterrupt:
        raise errors.Interrupted(
            f"interrupted: the colorized files in {config.out_dir} are whole; run the same command again to do the rest "
            "(finished ones are kept)"
        ) from None
    return 0 if summary.colorized or summary.existing else 1


main = cli.command(config.parse, run)  # main(argv=None, inception=None): the command line -> its exit status
