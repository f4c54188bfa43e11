"""Write the results: a JSON file and a markdown table beside it."""

import json
import math
import os

STATUS_MARK = {"pass": "pass", "fail": "**FAIL**", "report": "report", "n/a": "n/a here", "error": "**ERROR**"}


def _number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _ratio(row):
    spread = row.get("spread")
    return _number(row["ratio"]) + (f" ±{100 * spread:.0f}%" if spread is not None and math.isfinite(spread) else "")


def _side(side):
    return f"{side['what']}: {_number(side['value'])} {side['unit']}".strip()


def markdown(results):
    m = results["machine"]
    lines = [
        f"# Benchmarks ({results['mode']})",
        "",
        f"`{results['command']}` on {results['date']}, {results['seconds']:.0f} s.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable); "
        f"bf16 {'supported (' + ', '.join(m['bf16_flags']) + ')' if m['bf16_supported'] else 'not supported natively'}; "
        + ", ".join(f"{k} {m[k]}" for k in ("tensorflow", "jax", "keras") if k in m)
        + f" (Keras backend {m['keras_backend']}); accelerators: {', '.join(m['accelerators']) or 'none'}; "
        f"load average {m['load_average_start']} at start, {m.get('load_average_end')} at end.",
        "",
        f"bf16 goals: {'apply' if m.get('bf16_native', m['bf16_supported']) else 'n/a'} here ({m.get('bf16_reason', '')}); "
        "ratios of two sides timed in alternation, ± the spread of the per-round ratio."
        + (f" Inference figures ran with {m['inference_environment']}; training figures without." if m.get("inference_environment") else ""),
        "",
        "| figure | measured | against | ratio | goal | result | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["figures"]:
        lines.append(
            f"| {row['figure']} | {_side(row['measured'])} | {_side(row['against'])} | {_ratio(row)} "
            f"| {row['goal'] or 'report'} | {STATUS_MARK[row['status']]} | {row['note'].replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def write(results, out_dir):
    """``OUT/<mode>.json`` and ``OUT/<mode>.md``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, results["mode"])
    _write_atomic(stem + ".json", json.dumps(_plain(results), indent=2) + "\n")
    _write_atomic(stem + ".md", markdown(results))
    return stem + ".json", stem + ".md"


def _plain(value):
    """JSON-safe: NaN -> null, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
