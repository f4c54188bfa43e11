"""Colorize image files and folders, any size, with a trained model.

    python -m koalarization.colorize photos/ old.jpg "scans/*.png" -o colorized/ --model runs/smoke --compare

``--model`` is a run dir (``model.keras`` + ``config.json``), a ``.keras`` file or a SavedModel from
``python -m koalarization.export``; it is loaded as a :class:`koalarization.colorizer.Colorizer`,
the object the SavedModel's ``serving_default`` is traced from, so both give the same pixels. Each
output ``OUTDIR/<name>.png`` has the input's size and its full-resolution luminance; only the
chroma comes from the network. A colour input is reduced to its luminance first. ``--compare``
adds ``OUTDIR/<name>_compare.png``: gray input | colorized | original (when the input was colour).

Folders are searched recursively and keep their sub-folders in OUTDIR. Output names are decided
from the whole input set, so they do not depend on the order of the arguments: ``a.jpg`` and
``a.png`` give ``a-jpg.png`` and ``a-png.png``. An output is never written over an input, whatever
symbolic links say. Photos over ``--max-pixels`` (read from their header) are skipped and named.
Unreadable files are reported (path and reason) and skipped; existing outputs are kept unless
``--overwrite``. Exit status: 0 when at least one image was colorized or already done, 1 when
nothing could be colorized (with the reason), 2 for a bad command line or model, 3 for an output
folder that cannot be used (checked before any model is loaded).
"""

import argparse
import dataclasses
import json
import os
import re
import sys

from koalarization import images, options, safeio

COMPARE_SUFFIX = "_compare"
OLD_TEMPORARY = re.compile(r".+\.png\.tmp$")  # what versions before safeio left after a kill


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    inputs: tuple  # files, folders (recursive) and glob patterns
    out_dir: str
    model: str  # run dir, .keras file or SavedModel dir
    working_size: int | None = None  # default: the training image size (or the export's), else 224
    batch_size: int = 8  # images per network call, and at most ~16 MP of them
    compare: bool = False
    overwrite: bool = False
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    max_pixels: int = images.DEFAULT_MAX_PIXELS  # bigger photos are skipped (0: no limit)
    verbose: bool = False


@dataclasses.dataclass
class Summary:
    colorized: list = dataclasses.field(default_factory=list)  # output paths written
    existing: list = dataclasses.field(default_factory=list)  # outputs kept as they were
    failed: list = dataclasses.field(default_factory=list)  # (input path, reason)


# -- files -----------------------------------------------------------------------------------------
def plan_outputs(inputs, out_dir, compare=False):
    """``(jobs, missing)``: jobs are ``(input path, output stem under out_dir)``; missing ``(input, reason)``.

    Names come from the whole set (sorted), so they do not depend on argument order: stems that
    collide (``a.jpg``, ``a.png``) all keep their extension (``a-jpg``, ``a-png``); with ``compare``,
    an input named like another's panel (``x_compare.png`` beside ``x.png``) keeps its extension too.
    """
    found, missing = {}, []
    out_real = os.path.realpath(out_dir)
    for item in inputs:
        try:
            paths = images.find_images([item])
        except FileNotFoundError:
            missing.append((item, "no such file, folder or matching glob"))
            continue
        for path in paths:
            if os.path.realpath(path).startswith(out_real + os.sep):
                continue  # never colorize our own outputs
            relative = os.path.relpath(path, item) if os.path.isdir(item) else os.path.basename(path)
            found.setdefault(os.path.realpath(path), (path, relative))
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
    return jobs, missing


def _counts(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _save_png(array, path, inputs_real):
    """Write ``array`` (uint8 (H, W, 3)) to ``path`` atomically; never over one of the inputs."""
    from PIL import Image

    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    if os.path.realpath(path) in inputs_real or (os.path.exists(path) and any(safeio.same_file(path, s) for s in inputs_real)):
        raise safeio.OutputPathError(f"{path}: is one of the inputs (through a link); not overwritten")
    with safeio.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def colorize_files(config, inception=None, log=print):
    """Colorize every image of ``config.inputs`` into ``config.out_dir``; returns a :class:`Summary`.

    Paths are planned and checked (:func:`safeio.check_output_dir`) before the model is loaded.
    Raises :class:`safeio.OutputPathError` for an output folder that cannot be used.
    """
    if config.batch_size < 1:
        raise ValueError(f"--batch-size {config.batch_size}: must be at least 1")
    input_folders = [item for item in config.inputs if os.path.isdir(item)]
    safeio.check_output_dir(config.out_dir, input_folders)
    from koalarization.colorizer import Colorizer, resolve_model

    resolve_model(config.model)  # a missing or unusable --model is said before anything else
    jobs, missing = plan_outputs(config.inputs, config.out_dir, config.compare)
    summary = Summary(failed=list(missing))
    for path, reason in missing:
        log(f"skipped {path}: {reason}")
    inputs_real = {os.path.realpath(path) for path, _ in jobs}
    todo = []
    for path, stem in jobs:
        out = os.path.join(config.out_dir, stem)
        if os.path.realpath(out + ".png") in inputs_real or (config.compare and os.path.realpath(out + "_compare.png") in inputs_real):
            summary.failed.append((path, f"its output {out}.png is one of the inputs (through a link); not overwritten"))
            log(f"skipped {path}: its output {out}.png is one of the inputs (through a link); not overwritten")
        elif os.path.exists(out + ".png") and not config.overwrite:
            summary.existing.append(out + ".png")
            log(f"kept {out}.png: already exists (pass --overwrite to replace it)")
        else:
            todo.append((path, out))
    if not todo:
        if not jobs and not summary.failed:
            log(f"nothing to colorize: no image files found in {' '.join(config.inputs)}")
        log(_summary_line(summary, config.out_dir))
        return summary
    for folder in sorted({os.path.dirname(out) for _, out in todo}):  # leftovers of a killed run
        safeio.clean_temporaries(folder, [OLD_TEMPORARY])

    from tqdm import tqdm

    colorizer = Colorizer.load(config.model, inception, config.inception_weights, config.working_size, log)

    def readable():
        for path, out in todo:
            try:
                yield (path, out), images.read_image(path, config.max_pixels, as_tensor=True)
            except images.ImageError as error:
                summary.failed.append((error.path, error.reason))
                progress.write(f"skipped {error}")
                progress.update()

    with tqdm(total=len(todo), desc="colorizing", unit="image", file=sys.stderr, disable=None) as progress:
        for (path, out), rgb, colorized in colorizer.colorize_stream(readable(), config.batch_size):
            if isinstance(colorized, Exception):
                summary.failed.append((path, f"colorization failed: {colorized.__class__.__name__}"))
                progress.write(f"skipped {path}: colorization failed ({colorized.__class__.__name__})")
            else:
                try:
                    _save_png(colorized, out + ".png", inputs_real)
                    if config.compare:
                        from koalarization import plots

                        _save_png(plots.comparison_strip(rgb.numpy(), colorized), out + COMPARE_SUFFIX + ".png", inputs_real)
                except OSError as error:  # disk full, permission: nothing after this would work either
                    raise safeio.OutputPathError(safeio.describe_os_error(out + ".png", error)) from None
                summary.colorized.append(out + ".png")
            progress.update()
    log(_summary_line(summary, config.out_dir))
    return summary


def _summary_line(summary, out_dir):
    return f"colorized {len(summary.colorized)}, kept {len(summary.existing)} existing, failed {len(summary.failed)} -> {out_dir}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.colorize",
        description="Colorize photos of any size; outputs keep the input's size and full-resolution luminance.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or glob patterns")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for the colorized PNGs (created if needed)")
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    options.add_working_size(parser, "the network runs at; the output keeps the input size")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8; and at most ~16 MP of them)")
    parser.add_argument("--compare", action="store_true", help="also write NAME_compare.png: gray input | colorized | original")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them and say so)")
    options.add_max_pixels(parser, "skip (and name)")
    parser.add_argument("--inception-weights", help=options.INCEPTION_WEIGHTS_HELP)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = options.check(parser, parser.parse_args(argv))
    return ColorizeConfig(**{**vars(args), "inputs": tuple(args.inputs)})


def main(argv=None, inception=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        summary = colorize_files(config, inception=inception)
    except safeio.OutputPathError as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.EXIT_OUTPUT
    except Exception as error:  # noqa: BLE001  -- model and weights errors: one line, no traceback
        from koalarization import embedding

        if not isinstance(error, (ValueError, embedding.WeightsUnavailableError, FileNotFoundError)):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if summary.colorized or summary.existing else 1


if __name__ == "__main__":
    sys.exit(main())
