"""The Gradio page over one :class:`~koalarization.model.colorizer.Colorizer`, and the server that
shows it (:func:`serve`); the work is :mod:`koalarization.app.work`.

Safe by default: it listens on 127.0.0.1, opens no share link, sends no analytics, needs no
internet (no web fonts), refuses uploads over ``--max-file-mb`` and photos over ``--max-pixels``
(from their header, before decoding), runs one request at a time in one queue (``--queue-size``
waiting), and keeps uploads and results in one temporary folder removed at exit.
"""

import atexit
import os
import signal
import sys

from koalarization.app import work

API_NAME = "colorize"  # the photo endpoint: gradio_client.Client(url).predict(handle_file(photo), api_name="/colorize")
QUEUE = "colorizer"  # every event that runs the networks waits in this one queue, one at a time
LOCAL_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
LOCAL_MONO = ["ui-monospace", "monospace"]


def serve(config, inception=None, log=print):
    """Load the model, build the page and serve it until Ctrl-C or SIGTERM; the temporary folder goes at exit."""
    workspace = work.Workspace(config.keep_minutes * 60)
    atexit.register(workspace.remove)
    os.environ["GRADIO_TEMP_DIR"] = workspace.uploads  # Gradio reads it when imported
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: Gradio closes, the folder goes
    try:
        from koalarization.model.colorizer import Colorizer

        colorizer = Colorizer.load(config.model, inception, config.inception_weights, config.working_size, log, precision=config.precision)
        work.colorize_rgb(colorizer, _warm_up_photo())  # traced once now, not in the first visitor's time
        about = work.describe_model(colorizer, config, stand_in=inception is not None)
        log(about.replace("**", "").replace("`", ""))
        log(f"uploads and results in {workspace.root} (removed at exit)")
        demo = build(colorizer, config, workspace, about)
        launch(demo, config, workspace)
    except KeyboardInterrupt:
        pass
    finally:
        workspace.remove()


def _warm_up_photo():
    import numpy as np

    return np.full((16, 16, 3), 0.5, np.float32)


def launch(demo, config, workspace):
    import gradio as gr

    theme = gr.themes.Default(font=LOCAL_FONTS, font_mono=LOCAL_MONO)
    demo.queue(default_concurrency_limit=1, max_size=config.queue_size)
    demo.launch(
        server_name=config.host, server_port=config.port, share=config.share, root_path=config.root_path or None,
        max_file_size=config.max_file_mb * 1024 * 1024, allowed_paths=[workspace.results],
        ssr_mode=False, show_error=False, theme=theme, footer_links=["api"],
    )  # fmt: skip


def build(colorizer, config, workspace, about):
    """The page: a photo tab (with colour hints where the model takes them), a video tab, the model's facts."""
    import gradio as gr

    from koalarization import images
    from koalarization.video import films

    hints_on = bool(getattr(colorizer, "takes_hints", False))
    with gr.Blocks(title="Koalarization", analytics_enabled=False, delete_cache=(600, config.keep_minutes * 60)) as demo:
        gr.Markdown("# Koalarization: colorize old photos and films\n" + about, elem_id="about")
        with gr.Tab("Photos"):
            photos = gr.File(label="Drop one or many photos", file_count="multiple", file_types=list(images.IMAGE_EXTENSIONS), elem_id="photos")
            status = gr.Markdown(elem_id="status")
            slider = gr.ImageSlider(label="gray | colorized (drag the line)", type="filepath", format="png", interactive=False, elem_id="slider")
            gallery = gr.Gallery(label="All results (click one to see it above)", visible=False, columns=6, height="auto", format="png", interactive=False, allow_preview=False, elem_id="gallery")
            with gr.Group(visible=hints_on):
                gr.Markdown("Colour hints: pick a colour, then click the photo where it belongs; the result updates.")
                colour = gr.ColorPicker(value="#c03020", label="hint colour", elem_id="hint-colour")
                hint_photo = gr.Image(label="click to place a hint", type="filepath", format="png", interactive=False, elem_id="hint-photo")
                clear = gr.Button("clear this photo's hints")
            downloads = gr.File(label="Download (full size PNG; several photos: also one zip)", file_count="multiple", interactive=False, elem_id="downloads")
            state = gr.State({"results": [], "selected": 0, "folder": None})
        with gr.Tab("Video"):
            film = gr.File(label="Drop a video", file_types=list(films.VIDEO_EXTENSIONS), elem_id="film")
            film_status = gr.Markdown(elem_id="film-status")
            film_result = gr.Video(label="colorized (with its sound)", interactive=False, elem_id="film-result")
            film_download = gr.File(label="Download the colorized video", interactive=False, elem_id="film-download")

        def shown(result):
            return (result.gray, result.colorized)

        def colorize(files, progress=gr.Progress()):
            """Photos (files) -> status, gray | colorized of the first, all results, downloads."""
            paths = [str(getattr(f, "name", f)) for f in ([files] if isinstance(files, (str, os.PathLike)) else files or [])]
            if not paths:
                return "", None, gr.update(visible=False), None, None, {"results": [], "selected": 0, "folder": None}
            if len(paths) > config.max_photos:
                raise gr.Error(f"{len(paths)} photos at once: the limit is {config.max_photos} (--max-photos); drop fewer")
            folder = workspace.fresh()
            results, refusals = work.colorize_uploads(colorizer, paths, folder, config.max_pixels, progress)
            if not results:
                raise gr.Error("\n".join(refusals), duration=None, print_exception=False)
            lines = [f"colorized {len(results)} photo(s)"] + [f"- refused {line}" for line in refusals]
            value = {"results": results, "selected": 0, "folder": folder}
            gallery_update = gr.update(value=[r.colorized for r in results], visible=len(results) > 1)
            first = results[0]
            return "\n".join(lines), shown(first), gallery_update, first.colorized, work.downloads(results, folder), value

        outputs = [status, slider, gallery, hint_photo, downloads, state]
        photos.upload(colorize, photos, outputs, api_name=API_NAME, concurrency_id=QUEUE, concurrency_limit=1)

        def select(value, event: gr.SelectData):
            results = value["results"]
            if not results:
                return None, None, value
            value = {**value, "selected": event.index}
            return shown(results[event.index]), results[event.index].colorized, value

        gallery.select(select, state, [slider, hint_photo, state], api_visibility="private")

        def place_hint(value, picked, event: gr.SelectData):
            return rehint(value, lambda hints: hints + [(int(event.index[0]), int(event.index[1]), work.parse_colour(picked))])

        def clear_hints(value):
            return rehint(value, lambda hints: [])

        def rehint(value, change):
            results = list(value["results"])
            if not results:
                raise gr.Error("drop a photo first")
            i = value["selected"]
            old = results[i]
            try:
                new = work.colorize_upload(colorizer, old.source, os.path.dirname(old.colorized), config.max_pixels, change(old.hints), version=len(old.hints) + 1)
            except (work.Refused, ValueError) as error:
                raise gr.Error(str(error), print_exception=False) from None
            results[i] = new
            value = {**value, "results": results}
            return f"{len(new.hints)} hint(s) on {new.name}", shown(new), new.colorized, work.downloads(results, value["folder"]), value

        hint_outputs = [status, slider, hint_photo, downloads, state]
        hint_photo.select(place_hint, [state, colour], hint_outputs, concurrency_id=QUEUE, api_visibility="private")
        clear.click(clear_hints, state, hint_outputs, concurrency_id=QUEUE, api_visibility="private")

        def colorize_video(upload, progress=gr.Progress(track_tqdm=True)):
            if not upload:
                return "", None, None
            path = str(getattr(upload, "name", upload))
            progress(0, desc=f"colorizing {os.path.basename(path)}")
            try:
                out = work.colorize_film(colorizer, config, path, workspace.fresh(), log=lambda line: print(line, file=sys.stderr))
            except work.Refused as refusal:
                raise gr.Error(str(refusal), duration=None, print_exception=False) from None
            return f"colorized {os.path.basename(path)}", out, out

        film.upload(colorize_video, film, [film_status, film_result, film_download], api_name="colorize_video", concurrency_id=QUEUE, concurrency_limit=1)
    return demo
