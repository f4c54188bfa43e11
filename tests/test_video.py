"""`python -m koalarization.video`: films in, films out, steady colour, kill-safe.

The clips are written here with PyAV (benchmarks/video.py: a moving gradient and a moving disc,
one hard cut, AAC audio). The colorizer is a tiny network whose ab follows the luminance
(``benchmarks.video.luminance_colorizer``: grain and exposure flicker make its per-frame colour
flicker, and two shots of different tones get different colours) with the same FusionLayer as the
real one; the embedder is a stand-in (mean gray x a fixed matrix), both saved to files so a killed
subprocess loads the same.
"""

import json
import os
import subprocess
import sys

import av
import keras
import numpy as np
import pytest
from skimage import color

from benchmarks.video import luminance_colorizer, stand_in_embedder, write_clip
from koalarization.video import films
from koalarization.model.colorizer import Colorizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 16
FRAMES, HEIGHT, WIDTH, CUT = 40, 48, 64, 20
CHUNK = 16  # chunks of 16, 16, 8 frames: chunk boundaries inside both shots


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(run dir, embedder .keras path)."""
    root = tmp_path_factory.mktemp("video_model")
    run = root / "run"
    run.mkdir()
    luminance_colorizer(DIM).save(str(run / "model.keras"))
    config = {"records": {"image_size": 32, "embedding": {"model": "synthetic", "weights": {"source": "random"}, "dim": DIM}}}
    (run / "config.json").write_text(json.dumps(config))
    embedder = str(root / "embedder.keras")
    stand_in_embedder(DIM).save(embedder)
    return str(run), embedder


@pytest.fixture(scope="module")
def colorizer(models):
    run, embedder = models
    return Colorizer.load(run, keras.saving.load_model(embedder), log=lambda _: None)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    film = str(root / "film.mp4")
    write_clip(film, FRAMES, HEIGHT, WIDTH, cut=CUT)
    static = str(root / "static.mp4")
    write_clip(static, 24, HEIGHT, WIDTH, static=True, grain=2.0, exposure=0.05)  # a still shot, grain and exposure flicker
    return {"film": film, "static": static}


def run_video(colorizer, path, out_dir, **settings):
    config = films.VideoConfig(inputs=(path,), out_dir=str(out_dir), model="unused", chunk_frames=CHUNK, **settings)
    return films.colorize_video(config, path, colorizer, log=lambda _: None, progress=False)


def decoded(path):
    """``(frames uint8 (H, W, 3) as displayed, pts, stream facts)`` of a video file."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        facts = {"rate": stream.average_rate, "time_base": stream.time_base, "duration": container.duration}
        frames, pts = [], []
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24").copy()  # not a view of PyAV's reused buffer
            frames.append(np.rot90(rgb, round(frame.rotation / 90) % 4) if frame.rotation else rgb)
            pts.append(frame.pts)
    return frames, pts, facts


def audio_packets(path):
    with av.open(path) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def lab(frames):
    return np.stack([color.rgb2lab(f) for f in frames])  # (T, H, W, 3)


def flicker(frames):
    """Mean |delta ab| between consecutive frames, Lab units."""
    ab = lab(frames)[..., 1:]
    return float(np.abs(np.diff(ab, axis=0)).mean())


@pytest.fixture(scope="module")
def film_out(colorizer, clips, tmp_path_factory):
    return run_video(colorizer, clips["film"], tmp_path_factory.mktemp("film_out"))


def test_frames_rate_size_duration_and_timestamps_kept(clips, film_out):
    frames_in, pts_in, facts_in = decoded(clips["film"])
    frames_out, pts_out, facts_out = decoded(film_out)
    assert len(frames_out) == len(frames_in) == FRAMES
    assert frames_out[0].shape == frames_in[0].shape == (HEIGHT, WIDTH, 3)
    assert facts_out["rate"] == facts_in["rate"] == 25
    assert [p * facts_out["time_base"] for p in pts_out] == [p * facts_in["time_base"] for p in pts_in]
    assert abs(facts_out["duration"] - facts_in["duration"]) <= 1_000_000 / 25 / 2  # within half a frame (microseconds)


def test_luminance_kept_and_colour_added(clips, film_out):
    lab_in, lab_out = lab(decoded(clips["film"])[0]), lab(decoded(film_out)[0])
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).mean(axis=(1, 2)).max() <= 1.0  # every frame
    chroma_change = np.linalg.norm(lab_out[..., 1:] - lab_in[..., 1:], axis=-1).mean()
    assert chroma_change > 10  # the colour is the network's, not the input's


def test_audio_stream_copied_unchanged(clips, film_out):
    packets = audio_packets(clips["film"])
    assert packets and audio_packets(film_out) == packets


def test_video_uses_the_photo_method(colorizer, clips, tmp_path):
    """With smoothing off, each frame is what Colorizer.colorize makes of it as a photo (up to the codec)."""
    frames_in = decoded(clips["film"])[0][CUT - 4 : CUT + 4]
    out = run_video(colorizer, clips["film"], tmp_path, smoothing=0.0)
    photos = [c.numpy() for c in colorizer.colorize([f / 255.0 for f in frames_in])]
    difference = np.abs(lab(decoded(out)[0][CUT - 4 : CUT + 4])[..., 1:] - lab(photos)[..., 1:]).mean()
    print(f"video frames vs the same frames as photos: mean |delta ab| {difference:.2f}")
    assert difference < 1.5


def test_flicker_on_a_static_shot_at_most_half_of_frame_by_frame(colorizer, clips, tmp_path):
    """Default smoothing against none, both written with --crf 0 (x264 lossless): what is compared is
    the method's colour, not x264's own chroma noise (about +0.5 Lab units to both at --crf 18)."""
    steady = flicker(decoded(run_video(colorizer, clips["static"], tmp_path / "steady", crf=0))[0])
    frame_by_frame = flicker(decoded(run_video(colorizer, clips["static"], tmp_path / "single", smoothing=0.0, crf=0))[0])
    print(f"flicker on a static shot: {steady:.2f} steadied, {frame_by_frame:.2f} frame by frame (Lab units)")
    assert frame_by_frame > 1.0  # the grain really makes the colour flicker
    assert steady <= 0.5 * frame_by_frame


def test_no_colour_carried_across_the_cut(colorizer, clips, film_out, tmp_path):
    """The first frame of the new shot has the colour it gets on its own; without cut detection it would not."""
    single = lab(decoded(run_video(colorizer, clips["film"], tmp_path / "single", smoothing=0.0))[0][CUT : CUT + 1])[..., 1:]
    steady = lab(decoded(film_out)[0][CUT : CUT + 1])[..., 1:]
    no_cuts = lab(decoded(run_video(colorizer, clips["film"], tmp_path / "nocut", cut_threshold=1.0))[0][CUT : CUT + 1])[..., 1:]
    carried, carried_without_detection = np.abs(steady - single).mean(), np.abs(no_cuts - single).mean()
    print(f"colour carried across the cut: {carried:.2f} with cut detection, {carried_without_detection:.2f} without")
    assert carried <= 1.0
    assert carried_without_detection > 3.0  # the two shots get different colours: the check can fail


KILLED_RUN = """
import os, sys
import keras
real_replace = os.replace
def replace(src, dst, *args, **kwargs):  # a kill inside the write of the second chunk
    if os.path.basename(os.fspath(dst)) == "chunk-00001.mp4":
        os.truncate(src, os.path.getsize(src) // 2)
        os._exit(9)
    return real_replace(src, dst, *args, **kwargs)
if sys.argv[1] == "kill":
    os.replace = replace
from koalarization.video import films
sys.exit(films.main(sys.argv[3:], inception=keras.saving.load_model(sys.argv[2])))
"""


def run_cli(mode, embedder, args):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", KILLED_RUN, mode, embedder, *args], capture_output=True, text=True, env=env, timeout=300)


def test_kill_inside_a_chunk_then_resume_gives_the_unkilled_film(models, colorizer, clips, tmp_path):
    """Written lossless (--crf 0), so the decoded frames are exactly the colorized ones: at crf 18, x264
    (core 165, FFmpeg 8) itself gave other bytes for the very same input frames in about one encode in
    ten under CPU load on these 48x64 frames (never on 96x128 in 2,000 encodes), which made this test
    fail now and then without any fault of the resume."""
    run, embedder = models
    out = tmp_path / "out"
    args = [clips["film"], "-o", str(out), "--model", run, "--chunk-frames", str(CHUNK), "--crf", "0"]
    killed = run_cli("kill", embedder, args)
    assert killed.returncode == 9, killed.stderr[-2000:]
    final = out / "film.mp4"
    assert not final.exists()  # nothing broken under the final name
    resumed = run_cli("run", embedder, [*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after 1 finished chunk" in resumed.stdout
    frames, pts, _ = decoded(str(final))
    expected, expected_pts, _ = decoded(run_video(colorizer, clips["film"], tmp_path / "unkilled", crf=0))
    assert len(frames) == FRAMES and pts == expected_pts
    differing = {i: int(np.abs(a.astype(int) - b).max()) for i, (a, b) in enumerate(zip(frames, expected)) if not np.array_equal(a, b)}
    assert not differing, f"frames (index: largest difference) not as in an unkilled run: {differing}"  # the same film
    assert audio_packets(str(final)) == audio_packets(clips["film"])
    assert sorted(os.listdir(out)) == ["film.mp4"]  # the work folder is gone


def test_ctrl_c_keeps_a_playable_partial_file_and_resume_finishes(colorizer, clips, monkeypatch, tmp_path):
    real = films.colorize_batch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # batches of 8: two chunks of 16 are finished
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(films, "colorize_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_video(colorizer, clips["film"], tmp_path)
    assert not (tmp_path / "film.mp4").exists()
    partial, _, _ = decoded(str(tmp_path / "film.partial.mp4"))
    assert len(partial) == 2 * CHUNK
    monkeypatch.setattr(films, "colorize_batch", real)
    out = run_video(colorizer, clips["film"], tmp_path, resume=True)
    assert len(decoded(out)[0]) == FRAMES


def write_audio_only(path):
    with av.open(path, "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_no_frames(path):
    with av.open(path, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()


def test_bad_videos_get_one_line_each_and_no_output(models, clips, tmp_path, capsys):
    run, embedder = models
    bad = tmp_path / "bad"
    bad.mkdir()
    write_audio_only(str(bad / "audio.m4a"))
    write_no_frames(str(bad / "empty.mkv"))
    (bad / "text.mp4").write_text("not a video")
    data = open(clips["film"], "rb").read()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_clip(str(bad / "alien.mkv"), 4, HEIGHT, WIDTH)
    alien = (bad / "alien.mkv").read_bytes()
    (bad / "alien.mkv").write_bytes(alien.replace(b"V_MPEG4/ISO/AVC", b"V_KOALA/ISO/AVC"))  # a codec id FFmpeg does not know
    expected = {"audio.m4a": "no video stream (audio only)", "empty.mkv": "no frames", "text.mp4": "not a video FFmpeg can read",
                "truncated.mp4": "not a video FFmpeg can read", "alien.mkv": "unknown video codec"}  # fmt: skip
    out = tmp_path / "out"
    code = films.main([*(str(bad / name) for name in expected), "-o", str(out), "--model", run], inception=keras.saving.load_model(embedder))
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    for name, reason in expected.items():
        [line] = [line for line in lines if name in line and not line.startswith("{")]  # not the printed config
        assert line.startswith("skipped") and reason in line, line
    assert os.listdir(out) == []


def test_odd_sizes_one_pixel_rotation_and_variable_frame_rate(colorizer, tmp_path):
    cases = {
        "odd.mp4": dict(frames=6, height=25, width=33),
        "dot.mp4": dict(frames=4, height=1, width=1),
        "phone.mp4": dict(frames=6, height=48, width=64, rotation=90),  # stored sideways, shown upright
        "vfr.mp4": dict(frames=6, height=48, width=64, pts=[0, 40, 80, 200, 220, 400]),
    }
    for name, clip in cases.items():
        path = str(tmp_path / name)
        write_clip(path, **clip)
        frames_in, pts_in, _ = decoded(path)
        frames_out, pts_out, _ = decoded(run_video(colorizer, path, tmp_path / "out"))
        assert len(frames_out) == clip["frames"] and frames_out[0].shape == frames_in[0].shape, name
        assert pts_out == pts_in, name
        assert np.abs(lab(frames_out)[..., 0] - lab(frames_in)[..., 0]).mean() <= 1.0, name
    assert frames_out[0].shape == (48, 64, 3) and decoded(str(tmp_path / "out" / "phone.mp4"))[0][0].shape == (64, 48, 3)


def test_colorize_command_takes_films(models, clips, tmp_path, capsys):
    from koalarization.colorize import files as colorize

    run, embedder = models
    inception = keras.saving.load_model(embedder)
    assert colorize.main([clips["film"], "-o", str(tmp_path), "--model", run], inception=inception) == 0
    assert len(decoded(str(tmp_path / "film.mp4"))[0]) == FRAMES
    assert colorize.main([clips["film"], "-o", str(tmp_path), "--model", run], inception=inception) == 0  # kept, not redone
    assert "kept" in capsys.readouterr().out


def test_film_cut_short_gives_the_frames_before_the_damage(colorizer, tmp_path):
    path = str(tmp_path / "reel.mkv")  # Matroska: playable up to where it was cut
    write_clip(path, FRAMES, HEIGHT, WIDTH)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) * 6 // 10])
    readable = len(decoded(path)[0])
    assert 0 < readable < FRAMES
    assert len(decoded(run_video(colorizer, path, tmp_path / "out"))[0]) == readable


def test_a_second_run_on_the_same_output_is_one_line(models, clips, tmp_path, capsys, lock_holder):
    run, embedder = models
    work = tmp_path / ".film.mp4.work"
    lock_holder(work, "koalarization.video")
    code = films.main([clips["film"], "-o", str(tmp_path), "--model", run], inception=keras.saving.load_model(embedder))
    assert code == 4
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "in use by koalarization.video" in line
    assert not (tmp_path / "film.mp4").exists()


def test_audio_that_mp4_cannot_hold_goes_into_another_container_unchanged(colorizer, tmp_path):
    path = str(tmp_path / "telephone.mov")
    write_clip(path, 8, HEIGHT, WIDTH, audio_codec="pcm_mulaw")  # G.711 mu-law: QuickTime takes it, MP4 and Matroska do not
    out = run_video(colorizer, path, tmp_path / "out")
    assert out.endswith("telephone.mov")
    assert len(decoded(out)[0]) == 8 and audio_packets(out) == audio_packets(path)


def test_resume_with_other_settings_starts_over_and_says_so(colorizer, clips, monkeypatch, tmp_path):
    real, calls = films.colorize_batch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # one chunk of 16 finished
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(films, "colorize_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_video(colorizer, clips["film"], tmp_path)
    monkeypatch.setattr(films, "colorize_batch", real)
    said = []
    config = films.VideoConfig(inputs=(clips["film"],), out_dir=str(tmp_path), model="unused", chunk_frames=CHUNK, smoothing=0.5, resume=True)
    out = films.colorize_video(config, clips["film"], colorizer, log=said.append, progress=False)
    assert any("starting over" in line for line in said), said
    assert len(decoded(out)[0]) == FRAMES


def test_a_film_is_never_written_over_its_input(models, tmp_path, capsys):
    run, embedder = models
    folder = tmp_path / "films"
    folder.mkdir()
    film, other = str(folder / "reel.mp4"), str(folder / "reel.mov")
    write_clip(film, 8, HEIGHT, WIDTH)
    write_clip(other, 8, HEIGHT, WIDTH)
    before = {path: open(path, "rb").read() for path in (film, other)}
    inception = keras.saving.load_model(embedder)
    # into the films' own folder: reel.mp4 -> reel.mp4 (itself), and reel.mov -> reel.mp4 (the other input)
    for inputs in ([film], [other, film]):
        code = films.main([*inputs, "-o", str(folder), "--model", run, "--overwrite"], inception=inception)
        assert code == 1
        said = capsys.readouterr().out
        assert said.count("would be written over the input") == len(inputs) and "colorized" not in said
    assert {path: open(path, "rb").read() for path in (film, other)} == before
