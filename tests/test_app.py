"""`python -m koalarization.app`: the web page, driven in a real browser (headless Debian Chromium
through Playwright) against one server in a subprocess, as a person would use it.

The server runs a tiny model (the tinted colorizer of test_colorize.py) with a stand-in embedder
saved as a .keras file (tests/app_server.py passes it as ``inception=``, as the CLI library
functions take one), and the CLI colorizes the same photo with the same embedder for reference.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from koalarization import images
from koalarization.colorize import files as colorizing
from koalarization.video import films
from conftest import synthetic_photo
from test_colorize import DIM, stand_in_embedder, tinted_colorizer, to_uint8, write_run_dir

CHROMIUM = "/usr/bin/chromium"  # Debian's (.ci/run installs it): Playwright's own download is not used
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOT = os.path.join(ROOT, "docs", "app.png")
RESULT_WAIT_MS = 120_000  # the 2-core CI machine runs other tests beside this one
PEAK_MEMORY_LIMIT = 2 << 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("app_model")
    embedder = str(root / "embedder.keras")
    stand_in_embedder(DIM).save(embedder)
    return write_run_dir(root / "run", tinted_colorizer(DIM), embedding_model="synthetic"), embedder


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("app_photos") / "family.png")
    Image.fromarray(to_uint8(synthetic_photo(np.random.default_rng(7), 60, 84))).save(path)
    return path


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """The app in a subprocess, its temporary folder under a TMPDIR of its own; yields (url, process, tmpdir)."""
    run_dir, embedder = model
    tmpdir = tmp_path_factory.mktemp("app_tmp")
    log = open(tmp_path_factory.mktemp("app_log") / "server.log", "w+")
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, os.path.join(ROOT, "tests", "app_server.py"), embedder, "--model", run_dir, "--port", str(port), "--max-file-mb", "5"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmpdir))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                process.kill()
                pytest.fail(f"the app did not start:\n{log.read()[-3000:]}")
            time.sleep(0.5)
    yield url, process, tmpdir
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(server[0])
    page.wait_for_selector("#photos input[type=file]", state="attached")
    yield page
    context.close()


def upload(page, target, *paths):
    page.locator(f"#{target} input[type=file]").set_input_files(list(paths))


def download(page, link, folder):
    with page.expect_download() as info:
        link.click()
    path = os.path.join(str(folder), info.value.suggested_filename)
    info.value.save_as(path)
    return path


def cli_colorized(model, photo, out_dir):
    """The CLI's pixels for ``photo`` (python -m koalarization.colorize's library, the same embedder)."""
    run_dir, embedder = model
    config = colorizing.ColorizeConfig(inputs=(photo,), out_dir=str(out_dir), model=run_dir)
    summary = colorizing.colorize_files(config, inception=keras.saving.load_model(embedder, compile=False), log=lambda line: None)
    return np.asarray(Image.open(summary.colorized[0]))


def peak_memory(process):
    with open(f"/proc/{process.pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_help_answers_before_tensorflow_and_gradio():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "koalarization.app", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--max-pixels" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"tensorflow", "gradio", "keras"}


def test_a_photo_comes_back_with_the_cli_pixels(page, server, model, photo, tmp_path):
    upload(page, "photos", photo)
    link = page.locator("#downloads a", has_text="KB").first
    link.wait_for(timeout=RESULT_WAIT_MS)
    assert page.locator("#slider img").count() == 2  # gray | colorized, the slider between
    assert "random" not in page.locator("#about").inner_text() and "stand-in embedder" in page.locator("#about").inner_text()
    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    served = np.asarray(Image.open(download(page, link, tmp_path)))
    expected = cli_colorized(model, photo, tmp_path / "cli")
    assert served.shape == expected.shape == (60, 84, 3)  # full resolution
    assert np.abs(served.astype(int) - expected).max() <= 2


def test_a_broken_file_gets_a_message_and_the_next_photo_works(page, photo, tmp_path):
    broken = tmp_path / "scan.png"
    broken.write_bytes(b"not a picture at all")
    upload(page, "photos", str(broken))
    page.get_by_text("scan.png: not an image").first.wait_for(timeout=RESULT_WAIT_MS)
    upload(page, "photos", photo)
    page.locator('#downloads a[download="family_colorized.png"]').wait_for(timeout=RESULT_WAIT_MS)


def test_several_photos_come_back_with_a_zip(page, photo, tmp_path):
    other = tmp_path / "other.jpg"
    Image.fromarray(to_uint8(synthetic_photo(np.random.default_rng(8), 30, 20))).save(other)
    upload(page, "photos", photo, str(other))
    zipped = page.locator('#downloads a[download="colorized.zip"]')
    zipped.wait_for(timeout=RESULT_WAIT_MS)
    with zipfile.ZipFile(download(page, zipped, tmp_path)) as archive:
        assert sorted(archive.namelist()) == ["family.png", "other.png"]
        assert Image.open(archive.open("other.png")).size == (20, 30)
    page.locator("#gallery img").nth(1).click()  # the second thumbnail -> its gray | colorized above
    page.locator('#slider img[src*="other_colorized"]').wait_for(timeout=RESULT_WAIT_MS)


def test_the_pixel_bomb_is_refused_in_bounded_memory(page, server, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 48 KB on disk, 400 million pixels decoded
    upload(page, "photos", str(bomb))
    page.get_by_text("bomb.png: 20000x20000 = 400000000 pixels, over the limit").first.wait_for(timeout=RESULT_WAIT_MS)
    assert peak_memory(server[1]) < PEAK_MEMORY_LIMIT


def test_an_upload_over_the_size_limit_is_refused(page, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(os.urandom(6 << 20))  # the server allows 5 MB
    upload(page, "photos", str(big))
    page.get_by_text("exceed the maximum allowed size of 5.0 Mb").first.wait_for(timeout=RESULT_WAIT_MS)


def test_two_pages_at_once_both_get_their_results(browser, server, photo):
    contexts = [browser.new_context() for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.goto(server[0])
        page.wait_for_selector("#photos input[type=file]", state="attached")
    for page in pages:
        upload(page, "photos", photo)
    for page in pages:
        page.locator("#downloads a", has_text="KB").first.wait_for(timeout=RESULT_WAIT_MS)
    for context in contexts:
        context.close()


def test_the_api_endpoint_takes_the_photo_first(server, model, photo, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server[0], verbose=False, download_files=str(tmp_path))
    status, _slider, _gallery, _hint, downloads = client.predict([handle_file(photo)], api_name="/colorize")
    assert status.startswith("colorized 1")
    served = np.asarray(Image.open(downloads[0]))
    assert np.abs(served.astype(int) - cli_colorized(model, photo, tmp_path / "cli")).max() <= 2


def test_a_video_comes_back_with_its_frames_rate_and_sound(page, tmp_path):
    from benchmarks.video import FPS, write_clip

    clip = str(tmp_path / "in" / "film.mp4")
    os.makedirs(os.path.dirname(clip))
    write_clip(clip, frames=12, audio=True)
    page.get_by_role("tab", name="Video").click()
    upload(page, "film", clip)
    link = page.locator("#film-download a", has_text="KB").first
    link.wait_for(timeout=RESULT_WAIT_MS)
    assert page.locator("#film-result video").count() == 1
    out = films.probe(download(page, link, tmp_path))
    assert (out.frames, out.rate, len(out.audio), out.width, out.height) == (12, FPS, 1, 64, 48)


def test_the_temporary_folder_is_removed_at_exit(server):
    _, process, tmpdir = server
    assert any(name.startswith("koalarization-app-") for name in os.listdir(tmpdir))
    process.terminate()  # SIGTERM, as a service manager stops it
    assert process.wait(timeout=60) == 0
    assert not [name for name in os.listdir(tmpdir) if name.startswith("koalarization-app-")]


class HintsColorizer:
    """A stand-in for a colour-hints model (``takes_hints``): paints each hint's colour everywhere."""

    takes_hints = True

    def __init__(self):
        self.calls = []

    def colorize(self, rgbs, hints=None):
        self.calls.append(hints)
        colour = hints[0][-1][2] if hints else (128, 128, 128)
        return [np.broadcast_to(np.array(colour, np.uint8), rgb.shape).copy() for rgb in rgbs]


def test_a_hint_reaches_the_colorizer_in_photo_pixels_and_colour(photo, tmp_path):
    from koalarization.app import work

    colorizer = HintsColorizer()
    plain = work.colorize_upload(colorizer, photo, str(tmp_path), 0)
    hinted = work.colorize_upload(colorizer, photo, str(tmp_path), 0, hints=[(10, 20, work.parse_colour("#2040ff"))], version=1)
    assert colorizer.calls == [None, [[(10, 20, (32, 64, 255))]]]
    assert hinted.colorized != plain.colorized and hinted.hints == [(10, 20, (32, 64, 255))]
    assert np.asarray(Image.open(hinted.colorized))[0, 0].tolist() == [32, 64, 255]
    assert work.parse_colour("rgba(12, 34.4, 56, 1)") == (12, 34, 56) and work.parse_colour("#fff") == (255, 255, 255)


def test_a_click_on_a_real_hints_model_changes_the_colour_where_it_lands(photo, tmp_path):
    """The page's hint path (work.colorize_upload) on the real Colorizer of a tiny hints model (random
    weights, hint inputs weighed up so that a hint shows): the click's colour moves the output there."""
    import keras

    from koalarization.app import work
    from koalarization.model import network
    from koalarization.model.colorizer import Colorizer

    keras.utils.set_random_seed(5)
    net = network.build_colorizer(DIM, hints=True)
    kernel = net.get_layer("encoder_conv1").kernel
    kernel.assign(kernel.numpy() * np.array([1, 400, 400, 100], np.float32)[None, None, :, None])
    colorizer = Colorizer.load(write_run_dir(tmp_path / "hints_run", net, embedding_model="synthetic"), inception=stand_in_embedder(DIM), working_size=32)
    assert colorizer.takes_hints  # the page shows its hint controls for this model
    plain = work.colorize_upload(colorizer, photo, str(tmp_path), 0)
    hinted = work.colorize_upload(colorizer, photo, str(tmp_path), 0, hints=[(40, 30, work.parse_colour("#2040ff"))], version=1)
    before, after = (np.asarray(Image.open(r.colorized)).astype(int) for r in (plain, hinted))
    assert before.shape == after.shape == (60, 84, 3) and hinted.hints == [(40, 30, (32, 64, 255))]
    change = np.abs(after - before)[20:40, 30:50].mean()
    print(f"mean change around the click: {change:.1f} levels")
    assert change > 10, change
