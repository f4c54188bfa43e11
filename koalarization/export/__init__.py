"""The SavedModel for TF Serving: ``python -m koalarization.export`` (:mod:`.__main__`).

- :mod:`.config`: :class:`~.config.ExportConfig`, every option worded once;
- :mod:`.savedmodel`: the signatures, traced from the same
  :class:`~koalarization.model.colorizer.Colorizer` the command line uses.
"""
