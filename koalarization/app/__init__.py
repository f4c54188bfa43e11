"""A web page to colorize photos and films: ``python -m koalarization.app --model M`` (:mod:`.__main__`).

- :mod:`.config`: the page's settings (one frozen dataclass; the parser is built from its fields).
- :mod:`.work`: uploads in, full-size PNGs, a zip and films out, through the one Colorizer; no gradio.
- :mod:`.page`: the Gradio page and the server (127.0.0.1, one queue, a temporary folder removed at exit).
"""
