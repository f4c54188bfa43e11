"""Redraw docs/hints_before_after.png: one bundled photo (scikit-image) colorized by a colour-hints
model without hints and with three, beside its gray input and the original.

    python -m benchmarks.hints_figure --model runs/hints-docs [--photo chelsea] [--out docs/hints_before_after.png]

The three hints are ``--hint`` points, in pixels of the photo, each given the original's colour at
that pixel (as a user picking the true colour would). The same pixels come out of
``python -m koalarization.colorize PHOTO.png --model MODEL --hint X,Y,#RRGGBB ...`` (the one Colorizer).
Prints the hints as that command's flags.
"""

import argparse

HINTS = {  # photo -> three points (x, y) in its pixels
    "coffee": ((200, 180), (420, 120), (60, 330)),  # the cup's saucer, the background, the table
    "chelsea": ((150, 150), (330, 80), (400, 250)),
    "astronaut": ((250, 300), (100, 100), (420, 420)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hints_figure", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a colour-hints model (train --hints)")
    parser.add_argument("--photo", default="chelsea", choices=sorted(HINTS))
    parser.add_argument("--out", default="docs/hints_before_after.png")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image, ImageDraw
    from skimage import data

    from koalarization.model.colorizer import Colorizer

    original = getattr(data, args.photo)()  # uint8 (H, W, 3)
    rgb = original.astype(np.float32) / 255.0
    points = [(x, y, tuple(int(c) for c in original[y, x])) for x, y in HINTS[args.photo]]
    print(" ".join(f"--hint {x},{y},#{r:02x}{g:02x}{b:02x}" for x, y, (r, g, b) in points))
    colorizer = Colorizer.load(args.model)  # the Inception weights its records were built with
    plain = np.asarray(colorizer.colorize([rgb])[0])
    hinted = np.asarray(colorizer.colorize([rgb], hints=[points])[0])
    gray = np.repeat(np.round(0.299 * original[..., :1] + 0.587 * original[..., 1:2] + 0.114 * original[..., 2:]), 3, -1).astype(np.uint8)
    panels = [Image.fromarray(p) for p in (gray, plain, hinted, original)]
    draw = ImageDraw.Draw(panels[2])
    for x, y, colour in points:  # the hints, ringed in white and black so they show on any colour
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=colour, outline=(255, 255, 255), width=2)
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline=(0, 0, 0), width=1)
    height, width = original.shape[:2]
    sheet = Image.new("RGB", (4 * width + 30, height + 24), "white")
    labels = ("gray input", "no hints", "three hints", "original")
    text = ImageDraw.Draw(sheet)
    for i, (panel, label) in enumerate(zip(panels, labels)):
        sheet.paste(panel, (i * (width + 10), 24))
        text.text((i * (width + 10) + 4, 6), label, fill=(0, 0, 0))
    sheet = sheet.resize((sheet.width * 2 // 3, sheet.height * 2 // 3), Image.LANCZOS)  # a page's width, a smaller file
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
