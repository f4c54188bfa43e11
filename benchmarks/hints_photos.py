"""Photos for the docs' hints model: the bundled photos, cropped and hue-turned, so that only hints tell their colour.

    python -m benchmarks.hints_photos --out photos-hue [--copies 40] [--size 128] [--hold-out NAME]

A model trained on the eight bundled photos as they are learns their colours from their
luminance, and then has no reason to look at hints (docs/hints.md). Here each photo gives
``--copies`` random crops (half to all of its shorter side), each with its ab turned by a random
angle in CIE Lab (L, and so the gray input, unchanged; chroma kept): the same luminance comes in
every hue, so the colour can only come from the hints, as in Zhang et al.'s training, where
ImageNet's variety does this. ``--hold-out`` photos are left out entirely (none by default: a photo
whose crops were trained on, each in a random hue, still gets its colours from the hints, since
its own hue is one of all of them). Writes PNG files ``NAME-NNN.png``; build records from the folder with
``python -m tfrecords_builder --images photos-hue ...``.
"""

import argparse
import os

import numpy as np


def hue_turned(rgb, angle):
    """float sRGB (H, W, 3) in [0, 1] -> the same photo with its Lab ab turned by ``angle`` radians."""
    from koalarization import colors

    lab = np.asarray(colors.rgb_to_lab(rgb.astype(np.float32)))
    a, b = lab[..., 1], lab[..., 2]
    cos, sin = np.cos(angle), np.sin(angle)
    turned = np.stack([lab[..., 0], cos * a - sin * b, sin * a + cos * b], axis=-1)
    return np.clip(np.asarray(colors.lab_to_rgb(turned)), 0.0, 1.0)


def variants(rgb, copies, size, rng):
    """``copies`` random square crops of ``rgb`` (uint8), resized to ``size``, hue-turned; uint8 each."""
    from PIL import Image

    height, width = rgb.shape[:2]
    short = min(height, width)
    for _ in range(copies):
        side = int(rng.uniform(0.5, 1.0) * short)
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = Image.fromarray(rgb[top : top + side, left : left + side]).resize((size, size), Image.LANCZOS)
        yield (hue_turned(np.asarray(crop, np.float32) / 255.0, rng.uniform(0, 2 * np.pi)) * 255 + 0.5).astype(np.uint8)


def main(argv=None):
    from tfrecords_builder.sources import sample_photo_paths

    paths = {os.path.splitext(os.path.basename(path))[0]: path for path in sample_photo_paths()}
    names = sorted(paths)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hints_photos", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the PNG files into")
    parser.add_argument("--copies", type=int, default=40, help="crops of each photo (default 40)")
    parser.add_argument("--size", type=int, default=128, help="side of each crop, pixels (default 128)")
    parser.add_argument("--hold-out", action="append", default=None, choices=names, help="a photo to leave out (repeatable; default none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from PIL import Image

    held = set(args.hold_out or [])
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    count = 0
    for name in names:
        if name in held:
            continue
        for i, image in enumerate(variants(np.asarray(Image.open(paths[name]).convert("RGB")), args.copies, args.size, rng)):
            Image.fromarray(image).save(os.path.join(args.out, f"{name}-{i:03d}.png"))
            count += 1
    print(f"wrote {count} photos into {args.out} (held out: {', '.join(sorted(held)) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
