"""The web UI's Voices panel: save target clips as a named voice, pick it instead of uploading, blend two with a
slider, delete; confirmations before replacing or deleting; names that cannot escape the folder; and in a real
browser, a voice saved before a restart is still listed afterwards and converts (also through /convert)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from conftest import REPO, make_bundle

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
VOCODER = "griffinlim:2"


@pytest.fixture(scope="module")
def converter(tiny_bundle):
    from vc_app.converter import VoiceConverter

    return VoiceConverter.from_specs(str(tiny_bundle), VOCODER, device="cpu")


@pytest.fixture()
def service(converter, tmp_path):
    from vc_app.ui_limits import UiLimits
    from vc_app.ui_service import ConversionService, ConverterPool

    return ConversionService(ConverterPool(converter), UiLimits(max_seconds=20, max_upload_mb=1), tmp_path / "work",
                             voices_dir=tmp_path / "voices")


def _targets(speech_clips) -> list[str]:
    return [str(speech_clips["target"]), str(speech_clips["target2"])]


def test_a_saved_voice_converts_like_its_clips_and_is_still_there_after_a_restart(service, converter,
                                                                                     speech_clips, tmp_path):
    from vc_app.ui_limits import UiLimits
    from vc_app.ui_service import ConversionService, ConverterPool

    said = service.save_voice(" alice ", _targets(speech_clips))
    assert said.startswith("Saved the voice **alice** (2 clips,") and "model tiny" in said
    assert [value for _, value in service.voice_choices()] == ["alice"]
    assert service.voice_choices()[0][0].startswith("alice (2 clips, ")
    by_clips = service.convert(str(speech_clips["source"]), _targets(speech_clips))
    by_voice = service.convert(str(speech_clips["source"]), [], voice="alice")
    assert by_voice.output.name == "source_as_alice.wav" and by_voice.targets == []
    assert by_voice.output.read_bytes() == by_clips.output.read_bytes()  # the same conversion, bit for bit
    restarted = ConversionService(ConverterPool(converter), UiLimits(), tmp_path / "work2",
                                  voices_dir=tmp_path / "voices")
    assert [value for _, value in restarted.voice_choices()] == ["alice"]
    # a picked voice is used instead of the clips, which are ignored
    ignored = restarted.convert(str(speech_clips["source"]), [str(speech_clips["source"])], voice="alice")
    assert ignored.output.read_bytes() == by_clips.output.read_bytes()


def test_replacing_a_voice_needs_a_confirmation(service, speech_clips):
    from vc_app.ui_service import VoiceExists
    from vc_app.voice import Voice

    service.save_voice("alice", [str(speech_clips["target"])])
    path = service.voices.path("alice")
    before = path.read_bytes()
    with pytest.raises(VoiceExists, match="A voice called 'alice' is already saved."):
        service.save_voice("alice", [str(speech_clips["target2"])])
    assert path.read_bytes() == before
    service.save_voice("alice", [str(speech_clips["target2"])], overwrite=True)
    assert [c.name for c in Voice.load(path).clips] == ["target2.wav"]


@pytest.mark.parametrize("name,message", [("../x", "looks like a path"), ("/tmp/evil", "looks like a path"),
                                          ("a\x00b", "control character"), ("v" * 300, "at most 64 characters"),
                                          ("", "Give the voice a name")])
def test_unsafe_names_are_refused_and_nothing_is_written(service, speech_clips, tmp_path, name, message):
    from vc_app.errors import VcAppError

    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(VcAppError, match=message):
        service.save_voice(name, [str(speech_clips["target"])])
    with pytest.raises(VcAppError, match=message if name else "saved voice to delete"):
        service.delete_voice(name)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_blend_slider_and_delete(service, speech_clips, clips_bob):
    from vc_app.errors import VcAppError

    src = str(speech_clips["source"])
    service.save_voice("alice", _targets(speech_clips))
    service.save_voice("bob", [str(clips_bob)])
    pure = service.convert(src, [], voice="alice").output.read_bytes()
    assert service.convert(src, [], voice="alice", blend_with="bob", voice_percent=100).output.read_bytes() == pure
    half = service.convert(src, [], voice="alice", blend_with="bob", voice_percent=50)
    assert half.output.name == "source_as_50-alice-50-bob.wav" and half.output.read_bytes() != pure
    assert [(v.name, w) for v, w in half.voices] == [("alice", 0.5), ("bob", 0.5)]
    for kwargs, message in (({"voice": "alice", "blend_with": "bob", "voice_percent": 150}, "from 0 to 100"),
                            ({"blend_with": "bob"}, "Pick a saved voice to blend"),
                            ({"voice": "carol"}, "There is no saved voice called 'carol'"),
                            ({"voice": "../alice"}, "looks like a path")):
        with pytest.raises(VcAppError, match=message):
            service.convert(src, [], **kwargs)
    assert service.delete_voice("alice") == "Deleted the voice **alice**."
    assert [value for _, value in service.voice_choices()] == ["bob"]
    with pytest.raises(VcAppError, match="There is no saved voice called 'alice'"):
        service.convert(src, [], voice="alice")


@pytest.fixture(scope="module")
def clips_bob(tmp_path_factory):
    from conftest import synthetic_speech

    path = tmp_path_factory.mktemp("bob") / "bob.wav"
    sf.write(str(path), synthetic_speech(2.0, 22050, f0=90, seed=5), 22050)
    return path


def test_a_voice_of_another_model_is_refused_naming_both(converter, tiny_bundle, speech_clips, tmp_path, monkeypatch):
    from vc_app import ui_service
    from vc_app.errors import VcAppError
    from vc_app.ui_limits import UiLimits

    other = make_bundle(tmp_path / "checkpoints" / "other", seed=3)
    monkeypatch.setattr(ui_service, "list_local_bundles", lambda: [Path(tiny_bundle), other])
    service = ui_service.ConversionService(ui_service.ConverterPool(converter), UiLimits(), tmp_path / "work",
                                           voices_dir=tmp_path / "voices")
    service.save_voice("alice", [str(speech_clips["target"])])
    with pytest.raises(VcAppError) as err:
        service.convert(str(speech_clips["source"]), [], voice="alice", model=str(other))
    text = str(err.value)
    assert "made with the model tiny" in text and "not with the model other" in text
    assert str(tmp_path) not in text  # names, never server paths


@pytest.mark.slow
def test_the_convert_endpoint_takes_a_voice_and_the_analysis_names_it(converter, speech_clips, tmp_path):
    from vc_app.ui import build_demo, similarity_markdown
    from vc_app.ui_service import similarity_available

    demo = build_demo(converter, work_dir=tmp_path / "work", voices_dir=tmp_path / "voices")
    endpoint = demo.get_api_info()["named_endpoints"]["/convert"]
    params = [(p["parameter_name"], p["parameter_has_default"]) for p in endpoint["parameters"]]
    assert params[:2] == [("source", False), ("target", True)]  # a voice may stand in for the target clip
    assert params[-3:] == [("voice", True), ("blend_with", True), ("voice_percent", True)]
    from vc_app.ui_limits import UiLimits
    from vc_app.ui_service import ConversionService, ConverterPool

    service = ConversionService(ConverterPool(converter), UiLimits(), tmp_path / "work", voices_dir=tmp_path / "voices")
    service.save_voice("alice", _targets(speech_clips))  # saved after the page was built: the API still finds it
    handler = next(f.fn for f in demo.fns.values() if f.api_name == "convert")
    path, conversion = handler(str(speech_clips["source"]), None, voice="alice")
    assert Path(path).name == "source_as_alice.wav"
    analysis = service.analyse(conversion)
    assert analysis.pictures[1] == ("Target: saved voice alice", None)
    if similarity_available():  # the voice was saved with its d-vector, so the similarity to it is measured
        assert set(analysis.similarity) == {"converted_vs_target", "converted_vs_source", "source_vs_target"}
        assert "converted ↔ target" in similarity_markdown(analysis)


# -- a real server, restarted, in a real browser ------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _app(bundle: Path, voices: Path, temp: Path):
    """`python app.py --voices-dir VOICES` on a free port until the block ends: yields its URL."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_TEMP_DIR": str(temp / "gradio"), "TMPDIR": str(temp)}
    log = open(temp / f"server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--checkpoint", str(bundle), "--vocoder", VOCODER,
                             "--device", "cpu", "--port", str(port), "--voices-dir", str(voices)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(temp))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"app.py did not start: {(temp / f'server-{port}.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _browser(pw):
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


@pytest.mark.slow
@pytest.mark.browser
def test_browser_saves_a_voice_that_survives_a_restart_and_converts(tiny_bundle, speech_clips, tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test, but /usr/bin/chromium is missing")
        pytest.skip("/usr/bin/chromium is not installed")
    from gradio_client import Client, handle_file
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    voices = tmp_path / "voices"
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            with _app(tiny_bundle, voices, tmp_path) as url:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.locator("#target input[type=file]").set_input_files(str(speech_clips["target"]))
                page.locator("#voice-name input, #voice-name textarea").first.fill("../escape")
                page.locator("#voice-save").click()
                page.get_by_text("looks like a path").first.wait_for(timeout=60_000)
                page.locator("#voice-name input, #voice-name textarea").first.fill("alice")
                page.locator("#voice-save").click()
                page.locator("#voice-status").get_by_text("Saved the voice").wait_for(timeout=60_000)
                page.locator("#voice-save").click()  # the same name again: asks first
                page.locator("#voice-replace").wait_for(state="visible", timeout=60_000)
                page.locator("#voice-status").get_by_text("already saved").wait_for(timeout=30_000)
                page.locator("#voices").screenshot(path=str(ARTIFACTS / "ui-voices-replace.png"))
                page.locator("#voice-replace").click()
                page.locator("#voice-status").get_by_text("Saved the voice").wait_for(timeout=60_000)
                page.locator("#voice-replace").wait_for(state="hidden", timeout=30_000)
            assert sorted(p.name for p in voices.iterdir()) == ["alice.voice"]
            assert not (tmp_path / "escape.voice").exists()

            with _app(tiny_bundle, voices, tmp_path) as url:  # a fresh server on the same folder
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                page.locator("#voice input").click()
                page.get_by_role("option", name="alice (1 clip").click()
                page.locator("#source input[type=file]").set_input_files(str(speech_clips["source"]))
                page.locator("#convert").click()
                page.locator("#converted audio[src]").first.wait_for(state="attached", timeout=120_000)
                assert page.locator("#converted a[download]").first.get_attribute("download") == \
                    "source_as_alice.wav"
                page.screenshot(path=str(ARTIFACTS / "ui-voices.png"), full_page=True)
                assert "Traceback" not in page.content()

                client = Client(url, verbose=False)
                try:
                    result = client.predict(handle_file(str(speech_clips["source"])), voice="alice",
                                            api_name="/convert")
                finally:
                    client.close()
                assert Path(result).name == "source_as_alice.wav"
                assert abs(sf.info(result).frames - sf.info(str(speech_clips["source"])).frames) <= 1

                page.locator("#voice-delete").click()  # asks first, then deletes the voice picked in the menu
                page.locator("#voice-status").get_by_text("Delete the saved voice alice?").wait_for(timeout=30_000)
                assert (voices / "alice.voice").is_file()
                page.locator("#voice-delete-yes").click()
                page.locator("#voice-status").get_by_text("Deleted the voice alice").wait_for(timeout=30_000)
                assert list(voices.iterdir()) == []
        finally:
            browser.close()
