"""Colorizing photos and folders: ``python -m koalarization.colorize`` (:mod:`.__main__`).

- :mod:`.config`: :class:`~.config.ColorizeConfig`, every option worded once (and the command line's parse);
- :mod:`.files`: output names planned from the whole input set, then each photo through the
  :class:`~koalarization.model.colorizer.Colorizer`, written kill-safe.
"""
