"""The web UI: the page's parts, the conversion handler on good and bad input, the /convert API through
gradio_client, eight requests at once, and the page itself in headless Chromium (Playwright)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, make_bundle, synthetic_speech

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
VOCODER = "griffinlim:2"


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converter(tiny_bundle):
    from vc_app.converter import VoiceConverter

    return VoiceConverter.from_specs(str(tiny_bundle), VOCODER, device="cpu")


@pytest.fixture()
def service(converter, tmp_path):
    from vc_app.ui_limits import UiLimits
    from vc_app.ui_service import ConversionService, ConverterPool

    return ConversionService(ConverterPool(converter), UiLimits(max_seconds=20, max_upload_mb=1), tmp_path / "work")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, speech_clips) -> dict[str, Path]:
    """The conftest speech clips plus every kind of bad upload."""
    root = tmp_path_factory.mktemp("uploads")
    rate, good = 22050, synthetic_speech(1.0, 22050)
    (root / "notes.txt").write_text("definitely not audio\n" * 20)
    (root / "fake.wav").write_text("definitely not audio either\n" * 20)
    (root / "empty.wav").write_bytes(b"")
    sf.write(str(root / "silent.wav"), np.zeros(rate, np.float32), rate)
    short = np.zeros(rate, np.float32)
    short[:2000] = good[:2000]
    sf.write(str(root / "short.wav"), short, rate)
    sf.write(str(root / "long.wav"), synthetic_speech(25.0, 8000), 8000)  # 25 s, small: over a 20 s limit
    sf.write(str(root / "big.wav"), synthetic_speech(12.0, 48000), 48000)  # 1.15 MB: over a 1 MB limit
    (root / "corrupt.wav").write_bytes(speech_clips["source"].read_bytes()[:30])
    return {**speech_clips, **{p.stem: p for p in root.iterdir()}}


# -- unit: the page and the handler ---------------------------------------------------------------
@pytest.mark.slow
def test_build_demo_offers_a_convert_endpoint_with_optional_extras(converter, tmp_path):
    import gradio as gr

    from vc_app.ui import build_demo

    demo = build_demo(converter, work_dir=tmp_path)
    assert isinstance(demo, gr.Blocks)
    endpoint = demo.get_api_info()["named_endpoints"]["/convert"]
    params = [(p["parameter_name"], p["parameter_has_default"]) for p in endpoint["parameters"]]
    assert params == [("source", False), ("target", True), ("more_targets", True), ("model", True),
                      ("hub_id", True), ("vocoder", True), ("voice", True), ("blend_with", True),
                      ("voice_percent", True)]  # target: None when a saved voice is named
    assert [r["component"] for r in endpoint["returns"]] == ["Audio"]  # the API returns the audio alone
    assert endpoint["parameters"][5]["parameter_default"] == VOCODER  # the vocoder loaded at start
    texts = " ".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert "10–30 s of target speech" in texts and "Instance normalization" in texts and "AdaIN" in texts
    examples = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    assert examples and len(examples[0].samples) >= 3


def test_convert_writes_a_named_wav_as_long_as_the_source(service, clips):
    steps = []
    done = service.convert(str(clips["source"]), [str(clips["target"]), str(clips["target2"])],
                           progress=lambda fraction, text: steps.append((fraction, text)))
    assert done.output.name == "source_as_target.wav"
    assert service.work_dir in done.output.parents
    out, src = sf.info(str(done.output)), sf.info(str(clips["source"]))
    assert out.samplerate == 22050 and out.channels == 1 and abs(out.frames - src.frames) <= 1
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and any("target voice" in t for _, t in steps)


@pytest.mark.slow
def test_analysis_draws_three_spectrograms_and_measures_similarity(service, clips):
    from vc_app.ui import similarity_markdown
    from vc_app.ui_service import similarity_available

    done = service.convert(str(clips["source"]), [str(clips["target"])])
    analysis = service.analyse(done)
    labels = [label for label, _ in analysis.pictures]
    assert [label.split()[0] for label in labels] == ["Source", "Target", "Converted"]
    for _, picture in analysis.pictures:
        assert picture.dtype == np.uint8 and picture.shape[0] == 160 and picture.shape[2] == 3
        assert picture.std() > 10  # a picture of something, not a flat colour
    text = similarity_markdown(analysis)
    if similarity_available():
        assert set(analysis.similarity) == {"converted_vs_target", "converted_vs_source", "source_vs_target"}
        assert all(-1 <= v <= 1 for v in analysis.similarity.values()) and "converted ↔ target" in text
    else:
        assert "pip install -e '.[eval]'" in text


def test_mel_picture_puts_low_frequencies_at_the_bottom():
    import torch

    from vc_app.config import MelConfig
    from vc_app.ui_service import mel_picture

    t = torch.arange(22050) / 22050
    picture = mel_picture(0.5 * torch.sin(2 * torch.pi * 150 * t), MelConfig()).astype(float)
    assert picture[-20:].mean() > 3 * picture[:20].mean()


@pytest.mark.parametrize("source,target,message", [
    ("notes", "target", "The source clip notes.txt is not an audio file"),
    ("source", "notes", "The target clip notes.txt is not an audio file"),
    ("empty", "target", "The source clip empty.wav is empty"),
    ("corrupt", "target", "The source clip corrupt.wav is not an audio file"),
    ("silent", "target", "silent.wav is silent"),
    ("source", "silent", "silent.wav is silent"),
    ("short", "target", "at least 0.3 s"),
    ("source", "short", "at least 0.3 s"),
    ("long", "target", "long.wav is 25 s long; this server takes clips of up to 20 s"),
    ("source", "big", "big.wav is 1.2 MB; this server takes files of up to 1 MB"),
])
def test_bad_uploads_get_one_sentence_naming_the_file(service, clips, source, target, message):
    from vc_app.errors import VcAppError

    with pytest.raises(VcAppError) as err:
        service.convert(str(clips[source]), [str(clips[target])])
    text = str(err.value)
    assert message in text and "\n" not in text
    assert str(clips[source].parent) not in text  # file names, never server paths


def test_missing_inputs_and_bad_choices_are_refused(service, clips):
    from vc_app.errors import VcAppError

    src, tgt = str(clips["source"]), [str(clips["target"])]
    cases = [((None, tgt), {}, "source clip first"), ((src, []), {}, "at least one target clip"),
             ((src, tgt), {"hub_id": "../../etc"}, "not a Hugging Face hub id"),
             ((src, tgt), {"model": "/somewhere/else"}, "not one of the models offered"),
             ((src, tgt), {"vocoder": "melgan"}, "not one of the vocoders offered"),
             ((src, tgt), {"vocoder": "griffinlim:100000"}, "not one of the vocoders offered")]
    for args, kwargs, message in cases:
        with pytest.raises(VcAppError, match=message):
            service.convert(*args, **kwargs)


def test_bundles_in_checkpoints_and_hub_ids_are_offered(converter, tiny_bundle, clips, tmp_path, monkeypatch):
    from vc_app import ui_service
    from vc_app.ui_limits import UiLimits

    other = make_bundle(tmp_path / "checkpoints" / "other", seed=2)
    monkeypatch.setattr(ui_service, "list_local_bundles", lambda: [Path(tiny_bundle), other])
    service = ui_service.ConversionService(ui_service.ConverterPool(converter), UiLimits(), tmp_path / "work")
    assert service.choices.models == [("tiny (loaded)", str(tiny_bundle)), ("other", str(other))]
    done = service.convert(str(clips["source"]), [str(clips["target"])], model=str(other))
    assert done.output.is_file() and service.pool.is_loaded(str(other))
    assert service.resolve_model(str(other), " org/name ") == "org/name"  # a typed hub id wins over the menu


def test_unusable_vocoders_are_listed_with_their_reason(converter, tmp_path, monkeypatch):
    from vc_app import ui_service
    from vc_app.errors import VcAppError
    from vc_app.ui_limits import UiLimits

    reason = "its weights are not in the local cache and the hub cannot be reached."
    monkeypatch.setattr(ui_service, "vocoder_choices",
                        lambda: [("griffinlim", True, ""), ("hifigan:speechbrain-libritts", False, reason)])
    service = ui_service.ConversionService(ui_service.ConverterPool(converter), UiLimits(), tmp_path)
    assert service.choices.vocoders == [(f"{VOCODER} (loaded)", VOCODER), ("griffinlim", "griffinlim"),
                                        ("hifigan:speechbrain-libritts (unavailable)", "hifigan:speechbrain-libritts")]
    for typed in ("hifigan:speechbrain-libritts", "HiFiGAN"):  # the old spelling means the same vocoder
        with pytest.raises(VcAppError, match="The hifigan:speechbrain-libritts vocoder cannot be used on this server: "
                                             "its weights are not"):
            service.resolve_vocoder(typed)
    assert service.resolve_vocoder("griffinlim:8") == "griffinlim:8"  # any Griffin-Lim iteration count


@pytest.mark.slow
def test_handler_shows_errors_as_sentences_never_tracebacks(converter, clips, tmp_path, monkeypatch):
    import gradio as gr

    from vc_app.converter import VoiceConverter
    from vc_app.ui import build_demo

    demo = build_demo(converter, work_dir=tmp_path)
    handler = next(f.fn for f in demo.fns.values() if f.api_name == "convert")
    path, conversion = handler(str(clips["source"]), str(clips["target"]), [str(clips["target2"])])
    assert Path(path).name == "source_as_target.wav" and conversion.targets[1] == str(clips["target2"])
    with pytest.raises(gr.Error, match="The source clip notes.txt is not an audio file"):
        handler(str(clips["notes"]), str(clips["target"]))

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory at /deep/inside/torch.py line 12")

    monkeypatch.setattr(VoiceConverter, "convert", broken)
    with pytest.raises(gr.Error) as err:
        handler(str(clips["source"]), str(clips["target"]))
    assert str(err.value.message) == ("Something went wrong on the server (RuntimeError); the server log has the "
                                      "details.")


def test_models_load_on_demand_once_and_share_what_they_can(converter, tmp_path):
    from vc_app.errors import VcAppError
    from vc_app.ui_service import ConverterPool

    pool = ConverterPool(converter, capacity=2)
    assert pool.get() is converter and pool.get(None, VOCODER) is converter
    other_vocoder = pool.get(None, "griffinlim:1")
    assert other_vocoder is not converter and other_vocoder.model is converter.model  # the bundle is reused
    assert pool.get(None, "griffinlim:1") is other_vocoder  # cached, not rebuilt
    other = str(make_bundle(tmp_path / "other", seed=1))
    second = pool.get(other, VOCODER)
    assert second.model is not converter.model and second.vocoder is converter.vocoder
    pool.get(other, "griffinlim:1")
    assert len(pool) == 3 and pool.is_loaded() and not pool.is_loaded(None, "griffinlim:1")  # oldest extra dropped
    with pytest.raises(VcAppError):
        pool.get(str(tmp_path / "missing"), VOCODER)


def test_old_results_are_swept_from_the_work_folder(service, clips):
    first = service.convert(str(clips["source"]), [str(clips["target"])]).output
    assert first.exists()
    service.sweep(older_than=0)
    assert not first.parent.exists() and list(service.work_dir.iterdir()) == []


def test_examples_are_small_real_clips_shipped_as_package_data():
    from vc_app.examples import CLIPS, EXAMPLES_DIR, example_pairs

    assert len(example_pairs()) >= 3
    assert sum(c.path.stat().st_size for c in CLIPS) < 1_000_000
    for clip in CLIPS:
        info = sf.info(str(clip.path))
        assert info.samplerate == 22050 and info.channels == 1 and 2 <= info.duration <= 8
        # recorded speech from the credited corpora, not synthetic voices
        assert all(r.startswith(("arctic/", "vctk_sample/")) for r in clip.recordings)
    assert (EXAMPLES_DIR / "make_examples.py").is_file()


def test_example_clips_are_declared_as_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from vc_app.examples import CLIPS

    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert all(any(c.path.match(p) for p in package_data["vc_app.examples"]) for c in CLIPS)


def test_app_without_a_checkpoint_names_the_missing_one(tmp_path):
    missing = tmp_path / "no-such-bundle"
    done = subprocess.run([sys.executable, str(REPO / "app.py")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "VC_APP_CHECKPOINT": str(missing)})
    assert done.returncode == 1
    assert str(missing) in done.stderr and "--checkpoint" in done.stderr and "Traceback" not in done.stderr


# -- a real server: API, concurrency, browser ------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    """`python app.py` on a free port with the tiny bundle, its temp folders under `temp`: yields (url, temp)."""
    port, temp = _free_port(), tmp_path_factory.mktemp("server")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_TEMP_DIR": str(temp / "gradio"), "TMPDIR": str(temp)}
    log = open(temp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--checkpoint", str(tiny_bundle), "--vocoder",
                             VOCODER, "--device", "cpu", "--port", str(port), "--max-seconds", "20",
                             "--max-upload-mb", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(temp))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            if "Running on local URL" in (temp / "server.log").read_text():  # ready: after its warm-up request
                break
            raise OSError("warming up")
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"app.py did not start: {(temp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield SimpleNamespace(url=url, temp=temp)
    proc.terminate()  # SIGTERM: app.py stops serving and deletes its temp folder, then Python winds down
    deadline = time.monotonic() + 30
    while list(temp.glob("vc_app_ui_*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        proc.kill()  # the interpreter's own clean-up after torch and gradio takes seconds; nothing of ours is left
        proc.wait()
    log.close()
    assert list(temp.glob("vc_app_ui_*")) == [], "app.py left its temp folder behind"


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    yield client
    client.close()  # its heartbeat stream would hold the server's shutdown up


def _assert_converted(path: str, source: Path) -> None:
    out, src = sf.info(path), sf.info(str(source))
    assert out.samplerate == 22050 and out.channels == 1
    assert abs(out.frames - round(src.frames * 22050 / src.samplerate)) <= 1


@pytest.mark.slow
def test_api_converts_two_clips(server, client, clips):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(clips["source"])), handle_file(str(clips["target"])), api_name="/convert")
    assert Path(result).name == "source_as_target.wav"
    _assert_converted(result, clips["source"])
    work = list(server.temp.glob("vc_app_ui_*"))  # results stay in the app's temp folder
    assert len(work) == 1 and [p.name for p in work[0].glob("*/*.wav")] == ["source_as_target.wav"]
    several = client.predict(handle_file(str(clips["source"])), handle_file(str(clips["target"])),
                             [handle_file(str(clips["target2"]))], api_name="/convert")
    _assert_converted(several, clips["source"])


def test_app_warms_up_before_it_reports_ready_and_names_its_share_option(server):
    log = (server.temp / "server.log").read_text()
    assert "warmed up in" in log and "Running on local URL" in log, log
    assert log.index("warmed up in") < log.index("Running on local URL")  # the first visitor pays no first-call costs
    assert "--share" in log and "share=True" not in log  # app.py's option, not Gradio's launch() argument


@pytest.mark.slow
def test_api_refuses_a_non_audio_file_with_a_sentence(client, clips):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(clips["notes"])), handle_file(str(clips["target"])), api_name="/convert")
    assert str(err.value) == "The source clip notes.txt is not an audio file that can be read (Format not recognised)."


@pytest.mark.slow
def test_api_enforces_upload_size_and_duration_limits(server, client, clips):
    import httpx
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with open(clips["big"], "rb") as f:  # 1.2 MB against --max-upload-mb 1, sent past the client's own check
        response = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("big.wav", f, "audio/wav")})
    assert response.status_code == 413 and "maximum allowed size of 1000000 bytes" in response.text
    with pytest.raises(AppError, match="long.wav is 25 s long; this server takes clips of up to 20 s"):
        client.predict(handle_file(str(clips["long"])), handle_file(str(clips["target"])), api_name="/convert")


@pytest.mark.slow
def test_eight_simultaneous_requests_all_succeed(client, clips):
    from gradio_client import handle_file

    jobs = [client.submit(handle_file(str(clips["source"])), handle_file(str(clips[f"target{'2' * (i % 2)}"])),
                          api_name="/convert") for i in range(8)]
    results = [job.result(timeout=300) for job in jobs]
    assert len(results) == 8
    for result in results:
        _assert_converted(result, clips["source"])


@pytest.mark.slow
@pytest.mark.browser
def test_browser_converts_and_shows_errors(server, clips):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test, but /usr/bin/chromium is missing")
        pytest.skip("/usr/bin/chromium is not installed")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url)
            page.locator("#source input[type=file]").set_input_files(str(clips["source"]))
            page.locator("#target input[type=file]").set_input_files(str(clips["target"]))
            page.locator("#convert").click()
            page.locator("#converted audio[src]").first.wait_for(state="attached", timeout=120_000)
            page.locator("#mel-converted img").first.wait_for(state="visible", timeout=120_000)
            page.locator("#similarity").get_by_text("similarity", exact=False).first.wait_for(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "ui-screenshot.png"), full_page=True)
            assert page.locator("#converted a[download]").first.get_attribute("download") == "source_as_target.wav"

            # a text file: the page refuses it by its type, and Convert then asks for a source
            page.reload()
            page.locator("#source input[type=file]").set_input_files(str(clips["notes"]))
            page.get_by_text("Invalid file type: notes.txt").first.wait_for(timeout=30_000)
            page.locator("#target input[type=file]").set_input_files(str(clips["target"]))
            page.locator("#convert").click()
            page.get_by_text("Upload or record a source clip first.").first.wait_for(timeout=60_000)
            # a text file named .wav gets past the page; the server answers with one sentence
            page.reload()
            page.locator("#source input[type=file]").set_input_files(str(clips["fake"]))
            page.locator("#target input[type=file]").set_input_files(str(clips["target"]))
            page.locator("#convert").click()
            page.get_by_text("The source clip fake.wav is not an audio file that can be read").first.wait_for(
                timeout=60_000)
            page.wait_for_timeout(600)  # let the message finish sliding in before the picture is taken
            page.screenshot(path=str(ARTIFACTS / "ui-error.png"))
            assert "Traceback" not in page.content()
        finally:
            browser.close()


# -- the Live tab: microphone -> server -> converted audio, streamed ----------------------------------
@pytest.mark.parametrize("rates", [(48000, 22050), (44100, 22050), (16000, 22050), (22050, 22050)])
def test_live_resampler_in_pieces_equals_resampling_whole(rates):
    import torch

    from vc_app.audio import resample
    from vc_app.ui_service import StreamResampler

    signal = 0.1 * torch.randn(2 * rates[0], generator=torch.Generator().manual_seed(0))
    resampler, pieces, at = StreamResampler(*rates), [], 0
    for size in [12000, 7, 5000, 30000, 1] * 10:  # any sizes, as the browser's chunks come
        pieces.append(resampler(signal[at:at + size]))
        at += size
    out, whole = torch.cat(pieces), resample(signal, *rates)
    assert whole.numel() - out.numel() <= resampler.lookahead * rates[1] // rates[0] + 147  # only what waits
    assert torch.allclose(out, whole[:out.numel()], atol=1e-6)  # no seams where the pieces meet


def test_live_session_converts_browser_chunks_and_measures_its_latency(service, clips):
    import torch

    from vc_app.errors import VcAppError

    session = service.start_live("", [str(clips["target"])], vocoder=VOCODER)
    mic, _ = sf.read(str(clips["source"]), dtype="int16")
    mic48 = np.repeat(mic, 2)[: 2 * 48000]  # stands in for a 48 kHz microphone: int16 chunks of 0.25 s
    for i in range(0, mic48.size, 12000):
        session.push(48000, mic48[i:i + 12000])
    session.close()
    out = np.concatenate(list(session.converted()))
    assert abs(out.size - 2 * 22050) <= 2048 and np.abs(out).max() > 0.01  # 2 s in, ~2 s of sound out, 22.05 kHz
    latency = session.latency()
    assert session.chunks == 8 and session.blocks == 2 * 22050 // 2048
    assert latency["chunks"] == pytest.approx(0.25) and latency["stream"] == pytest.approx(3584 / 22050)
    assert latency["total"] == pytest.approx(sum(v for k, v in latency.items() if k != "total"))
    assert f"Latency {latency['total'] * 1000:.0f} ms" in session.status() and "blocks converted" in session.status()
    with pytest.raises(VcAppError, match="changed from 48000 Hz to 44100 Hz"):
        session.push(44100, mic48[:1000])
    service.save_voice("alice", [str(clips["target"])])
    saved = service.start_live("alice", [], vocoder=VOCODER)  # a saved voice instead of clips
    assert torch.equal(saved.stream.speaker, session.stream.speaker)
    for args, message in [(("", []), "Pick a saved voice or give target clips"),
                          (("", [str(clips["notes"])]), "The target clip notes.txt is not an audio file"),
                          (("nobody", []), "nobody")]:
        with pytest.raises(VcAppError, match=message):
            service.start_live(*args, vocoder=VOCODER)


def test_live_picks_the_vocoder_that_keeps_up_once_per_model(service, clips, monkeypatch):
    import vc_app.streaming

    timed = []

    def measure(stream):
        timed.append(stream.vocoder.name)
        return (0.9 if stream.vocoder.name == "hifigan:universal" else 0.1) * stream.block_samples / 22050

    monkeypatch.setattr(vc_app.streaming, "measure_compute", measure)
    monkeypatch.setattr(vc_app.streaming, "LIVE_VOCODERS", ("hifigan:missing", "griffinlim:3"))
    session = service.start_live("", [str(clips["target"])])
    assert session.stream.vocoder.name == "griffinlim:3" and timed == ["griffinlim:3"]  # a missing one is passed
    again = service.start_live("", [str(clips["target"])])
    assert again.stream.vocoder.name == "griffinlim:3" and timed == ["griffinlim:3"]  # measured once
    assert "vocoder griffinlim:3, 10% of each 93 ms block here" in again.status()


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory) -> Path:
    """Real recorded speech as Chromium's fake microphone wants it: a 16-bit WAV (it plays it in a loop)."""
    from vc_app.examples import EXAMPLES_DIR

    data, rate = sf.read(str(EXAMPLES_DIR / "arctic_clb_source.flac"))
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    # a microphone that does not clip, with headroom for the gain control Chromium applies to it
    sf.write(str(path), 0.25 * data / np.abs(data).max(), rate, subtype="PCM_16")
    return path


@pytest.mark.slow
@pytest.mark.browser
def test_browser_live_tab_streams_the_microphone_converted_and_shows_the_latency(server, clips, fake_microphone):
    import shutil

    missing = [what for what, there in (("/usr/bin/chromium", CHROMIUM.exists()), ("ffmpeg", shutil.which("ffmpeg")))
               if not there]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Live tab's browser test, but {', '.join(missing)} is missing")
        pytest.skip(f"{', '.join(missing)} is not installed")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_microphone}", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url)
            page.get_by_role("tab", name="Live").click()
            page.locator("#live-targets input[type=file]").set_input_files(str(clips["target"]))
            page.locator("#live-mic button").filter(has_text="Record").first.click()
            status = page.locator("#live-status")
            status.get_by_text("blocks converted", exact=False).wait_for(timeout=180_000)
            page.wait_for_function("() => { const a = document.querySelector('#live-out audio');"
                                   " return a && a.currentTime > 2; }", timeout=120_000)  # the output plays
            page.locator("#live-player").get_by_text("The browser's player holds", exact=False).wait_for(
                timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "ui-live.png"), full_page=True)
            shown, player = status.inner_text(), page.locator("#live-player").inner_text()
            page.locator("#live-mic button").filter(has_text="Stop").first.click()
            link = page.locator("#live-out a[download]").first
            link.wait_for(state="attached", timeout=30_000)
            heard = page.request.get(link.get_attribute("href")).body()  # the streamed output, as the page has it
        finally:
            browser.close()
    print(f"Live tab: {shown}\n{player}")
    blocks = int(shown.split(" blocks converted")[0].split()[-1])
    total = float(shown.split("Latency ")[1].split(" ms")[0])
    assert blocks >= 10 and 150 < total < 2000  # the stream ran; the latency is the stream's and Gradio's
    assert "Gradio's chunks" in shown and "Hz to 22050 Hz" in shown and "clips" not in shown
    samples = _decode(heard)
    assert samples.size > 22050 and np.sqrt(np.mean(samples ** 2)) > 0.01  # converted sound, not silence


def _decode(data: bytes) -> np.ndarray:
    """Any audio the browser plays -> float32 mono at 22.05 kHz (ffmpeg: Gradio streams audio through it)."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "22050",
                           "pipe:1"], input=data, capture_output=True, check=True)
    return np.frombuffer(done.stdout, dtype=np.int16).astype(np.float32) / 32768
