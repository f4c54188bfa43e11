"""How much each figure moves between whole runs: ``python -m benchmarks`` run several times on
one machine, then

    python -m benchmarks.spread benchmarks/results/intel-bf16/run-*/full.json --out benchmarks/results/intel-bf16/spread.md

For every figure: its ratio in each run, the median, the spread ((largest - smallest) / median)
and the verdicts of the runs; a spread over ``LIMIT`` (issue 14: "each figure's spread over three
full runs on a quiet machine under 10%") is marked. Runs of other machines or modes are refused.
"""

import argparse
import json
import math
import os
import statistics
import sys

LIMIT = 0.10


def spreads(runs):
    """Results dicts (each one run's JSON) -> one row per figure key, in the first run's order:
    ``{"key", "figure", "ratios", "median", "spread", "statuses"}`` (a figure missing from a run
    has ``None`` there and no spread)."""
    rows = []
    for first in runs[0]["figures"]:
        found = [next((f for f in run["figures"] if f["key"] == first["key"]), None) for run in runs]
        ratios = [f["ratio"] if f is not None and f["status"] != "error" else None for f in found]
        known = sorted(r for r in ratios if r is not None and math.isfinite(r))
        median = statistics.median(known) if known else None
        spread = (known[-1] - known[0]) / abs(median) if len(known) == len(runs) and median else None
        rows.append({
            "key": first["key"], "figure": first["figure"], "goal": first["goal"], "ratios": ratios, "median": median,
            "spread": spread, "statuses": [f["status"] if f is not None else "missing" for f in found],
        })  # fmt: skip
    return rows


def check_same_setting(runs, names):
    """The runs must be of one machine and one mode; raises ``ValueError`` naming the odd one."""
    for run, name in zip(runs[1:], names[1:]):
        for field, value, reference in (("mode", run["mode"], runs[0]["mode"]), ("CPU", run["machine"]["cpu"], runs[0]["machine"]["cpu"])):
            if value != reference:
                raise ValueError(f"{name}: {field} {value!r}, not {reference!r} as in {names[0]}; spreads compare runs of one setting")


def markdown(runs, names, rows, limit=LIMIT):
    m = runs[0]["machine"]
    over = [row["key"] for row in rows if row["spread"] is not None and row["spread"] >= limit]
    lines = [
        f"# Spread of the figures over {len(runs)} {runs[0]['mode']} runs",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; bf16 {'native' if m.get('bf16_native') else 'not native'}; "
        f"tensorflow {m.get('tensorflow', '-')}. Runs: " + ", ".join(f"`{n}` ({r['date']}, load {r['machine']['load_average_start']})" for n, r in zip(names, runs)),
        "",
        f"Spread = (largest - smallest ratio) / median; goal: under {100 * limit:.0f}%. "
        + (f"Over it: {', '.join(over)}." if over else "Every figure is under it."),
        "",
        "| figure | goal | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median | spread | verdicts |",
        "|---|---|" + "---|" * len(runs) + "---|---|---|",
    ]
    for row in rows:
        ratios = " | ".join("-" if r is None else f"{r:.3g}" for r in row["ratios"])
        spread = "-" if row["spread"] is None else f"{100 * row['spread']:.1f}%" + (" **over**" if row["spread"] >= limit else "")
        median = "-" if row["median"] is None else f"{row['median']:.3g}"
        lines.append(f"| {row['figure']} | {row['goal'] or 'report'} | {ratios} | {median} | {spread} | {', '.join(row['statuses'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spread", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="the JSON files that python -m benchmarks wrote (two or more)")
    parser.add_argument("--out", help="write the table here too (markdown)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give two or more runs")
    try:
        runs = []
        for name in args.runs:
            with open(name) as f:
                runs.append(json.load(f))
        check_same_setting(runs, args.runs)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = markdown(runs, args.runs, spreads(runs))
    print(table, end="")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        from koalarization import safeio

        safeio.write_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
