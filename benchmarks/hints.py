"""What the colour-hints variant costs beside the automatic model (docs/hints.md), measured side by side:

    python -m benchmarks.hints [--repeats 7] [--out benchmarks/results]

1. the colorizer network alone at 224x224, batch 4 (automatic: L; variant: L + hints), and
2. the whole method on one 512x512 photo (Inception-ResNet-v2 with random weights, letterbox,
   recombination), automatic vs the variant given three hints.

The two models run alternately in one process, each call timed, the median reported, so a busy
machine slows both alike. Prints one JSON line per figure and writes them all, with the machine,
to ``OUT/hints.json`` and ``OUT/hints.md`` (docs/hints.md quotes them).
"""

import argparse
import json
import os
import statistics
import time


def median_seconds(function, repeats):
    function()  # traced and warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hints", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results", help="folder for hints.json and hints.md (default: %(default)s)")
    args = parser.parse_args(argv)

    import numpy as np

    from benchmarks import machine
    from koalarization.model import inception, network
    from koalarization.model.colorizer import Colorizer

    automatic, variant = network.build_colorizer(1000), network.build_colorizer(1000, hints=True)
    rng = np.random.default_rng(0)
    l = rng.uniform(-1, 1, (4, 224, 224, 1)).astype("float32")
    embedding = rng.normal(size=(4, 1000)).astype("float32")
    hint_input = np.zeros((4, 224, 224, 3), "float32")
    gray = inception.build_inception("random")
    auto_c, hints_c = Colorizer.from_keras(automatic, gray, 224), Colorizer.from_keras(variant, gray, 224)
    photo = rng.uniform(0, 1, (512, 512, 3)).astype("float32")
    three = [[(100.0, 120.0, (200, 40, 30)), (400.0, 300.0, (30, 90, 200)), (250.0, 480.0, (40, 160, 60))]]

    figures = {}
    for name, runs in {
        "network 224x224, batch 4 (s)": (lambda: auto_c.predict_ab(l, embedding), lambda: hints_c.predict_ab(l, embedding, hint_input)),
        "whole method, one 512x512 photo (s)": (lambda: auto_c.colorize([photo]), lambda: hints_c.colorize([photo], hints=three)),
    }.items():
        pair = [[], []]
        for _ in range(args.repeats):  # alternately
            for i, run in enumerate(runs):
                pair[i].append(median_seconds(run, 1))
        figures[name] = {"automatic": statistics.median(pair[0]), "hints": statistics.median(pair[1])}
        figures[name]["ratio"] = figures[name]["hints"] / figures[name]["automatic"]
        print(json.dumps({name: figures[name]}))
    parameters = {"automatic": automatic.count_params(), "hints": variant.count_params()}
    results = {"figures": figures, "parameters": parameters, "repeats": args.repeats, "machine": machine.describe()}
    print(json.dumps({"parameters": parameters, "machine": machine.cpu_model()}))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "hints.json"), "w") as f:
        json.dump(results, f, indent=1)
    rows = ["| | automatic | colour hints | ratio |", "|---|---:|---:|---:|"]
    rows.append(f"| parameters | {parameters['automatic']:,} | {parameters['hints']:,} | {parameters['hints'] / parameters['automatic']:.4f} |")
    rows += [f"| {name} | {v['automatic']:.3f} | {v['hints']:.3f} | {v['ratio']:.2f} |" for name, v in figures.items()]
    with open(os.path.join(args.out, "hints.md"), "w") as f:
        f.write(f"Colour hints vs the automatic model: `python -m benchmarks.hints --repeats {args.repeats}` on {machine.cpu_model()} "
                f"({results['machine']['cores']} cores, load {results['machine']['load_average_start']} at start), medians.\n\n"
                + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
