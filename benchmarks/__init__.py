"""Benchmarks: every stage measured against its own limit, side by side, in one run.

    python -m benchmarks                 # full run (~30 min on 2 cores), writes benchmarks/results/full.{json,md}
    python -m benchmarks --quick         # smaller counts and sizes, under 5 minutes
    python -m benchmarks --gpu-jax       # GPU machine with JAX and no TensorFlow: bf16 train step

Timings on a shared machine are noisy, so each figure is the ratio of two measurements made in
the same run, interleaved where possible, each the median of several repeats. This package holds
the shared pieces: :func:`figure` (one row of the results) and the timing helpers.
"""

import statistics
import time


def figure(key, title, measured, against, goal=None, ratio=None, note="", applicable=True):
    """One row of the results.

    ``measured`` and ``against`` are ``(what, value, unit)``; ``goal`` is ``(">=" | "<=", number)``
    or ``None`` for a figure that is only reported. ``ratio`` defaults to measured / against.
    ``applicable=False`` marks a goal that does not apply to this machine (the note says why).
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
