"""Benchmarks: every stage measured against its own limit, side by side, in one run.

    python -m benchmarks                 # full run (~30 min on 2 cores), writes benchmarks/results/full.{json,md}
    python -m benchmarks --quick         # smaller counts and sizes, ~7 minutes on 2 cores
    python -m benchmarks --gpu-jax       # GPU machine with JAX and no TensorFlow: bf16 train step

Timings on a shared machine are noisy, so each figure is the ratio of two measurements made in
the same run, interleaved where possible, each the median of several repeats. This package holds
the shared pieces: :func:`figure` (one row of the results) and the timing helpers.
"""

import statistics
import time

# Set by ``--smoke`` (a check of the harness, whose timings mean nothing): every alternation stops
# after this many rounds, the fewest that give a spread. None: each figure's own rounds.
ROUNDS_CAP = None


def figure(key, title, measured, against, goal=None, ratio=None, note="", applicable=True, spread=None):
    """One row of the results.

    ``measured`` and ``against`` are ``(what, value, unit)``; ``goal`` is ``(">=" | "<=", number)``
    or ``None`` for a figure that is only reported. ``ratio`` defaults to measured / against.
    ``applicable=False`` marks a goal that does not apply to this machine (the note says why).
    ``spread``: the ratio's relative half-range over the alternating rounds (see :func:`alternate_until_stable`).
    """
    if ratio is None:
        ratio = measured[1] / against[1] if against[1] else float("nan")
    if goal is None:
        status = "report"
    elif not applicable:
        status = "n/a"
    else:
        op, bound = goal
        status = "pass" if (ratio >= bound if op == ">=" else ratio <= bound) else "fail"
    return {
        "key": key,
        "figure": title,
        "measured": {"what": measured[0], "value": measured[1], "unit": measured[2]},
        "against": {"what": against[0], "value": against[1], "unit": against[2]},
        "ratio": ratio,
        "spread": spread,
        "goal": None if goal is None else f"{'≥' if goal[0] == '>=' else '≤'} {goal[1]:g}",
        "status": status,
        "note": note,
    }


def error_figure(key, title, error):
    """The row for a figure whose measurement failed: the reason, on one line."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())  # TF's errors span many lines
    reason = reason if len(reason) <= 400 else reason[:150] + " ... " + reason[-245:]
    row = figure(key, title, ("-", float("nan"), ""), ("-", float("nan"), ""))
    row.update(status="error", note=reason)
    return row


def seconds(fn, repeats):
    """Wall-clock seconds of each of ``repeats`` calls of ``fn()`` (a list)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved_medians(fns, repeats):
    """Median seconds per call of each function in ``fns``, calling them in turn (A B A B ...) so
    that load from other processes hits all of them alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i] += seconds(fn, 1)
    return [statistics.median(t) for t in times]


def alternate_until_stable(fns, min_rounds=3, max_rounds=9, budget_s=60.0, tolerance=0.05):
    """Time ``fns[0]`` and ``fns[1]`` in alternation (A B A B ...), one call each per round, until
    the ratio of the two is stable: at least ``min_rounds``, then stop once the last three rounds'
    ratios ``t0 / t1`` lie within ``±tolerance`` of their median, or at ``max_rounds``, or when
    ``budget_s`` seconds have gone. Call each function once before, untimed, to warm it up.

    Returns ``{"seconds": [median t0, median t1], "ratio": median t0 / median t1,
    "spread": half the interquartile range of the per-round ratios t0 / t1, over ratio, "rounds": n}`` (ratio > 1: the
    second is faster).
    """
    if ROUNDS_CAP:
        min_rounds = max_rounds = ROUNDS_CAP
    start = time.perf_counter()
    times, ratios = [[], []], []
    while True:
        for i, fn in enumerate(fns):
            times[i] += seconds(fn, 1)
        ratios.append(times[0][-1] / times[1][-1])
        n = len(ratios)
        if n >= max_rounds or (n >= min_rounds and time.perf_counter() - start > budget_s):
            break
        if n >= min_rounds:
            last = ratios[-3:]
            middle = statistics.median(last)
            if all(abs(r - middle) <= tolerance * middle for r in last):
                break
    ratio = statistics.median(times[0]) / statistics.median(times[1])  # = the table's measured / against
    return {
        "seconds": [statistics.median(t) for t in times],
        "ratio": ratio,
        "spread": _half_iqr(ratios) / ratio,
        "rounds": len(ratios),
    }


def stability_note(result):
    """``'ratio over N alternating rounds, spread ±x%'`` for a row's note."""
    return f"median of {result['rounds']} alternating rounds, per-round ratio spread (half IQR) ±{100 * result['spread']:.1f}%"


def _half_iqr(values):
    if len(values) < 2:
        return float("nan")
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / 2
