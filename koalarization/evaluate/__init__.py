"""Scoring a colorizer beside two baselines: ``python -m koalarization.evaluate`` (:mod:`.__main__`).

- :mod:`.config`: :class:`~.config.EvaluateConfig`, every option worded once;
- :mod:`.scoring`: the model, the gray and mean-ab baselines, the per-image metrics, the report.
"""
