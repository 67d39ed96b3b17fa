"""The front door: `import vc_app` is light, its verbs work, and the README's Python example runs as written."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch

import vc_app
from vc_app.errors import VcAppError

from conftest import REPO


def readme_python_example() -> str:
    """The code block of the README's *Python* section, verbatim."""
    section = (REPO / "README.md").read_text().split("\n## Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_vc_app_loads_neither_torch_nor_gradio():
    code = ("import sys, vc_app; heavy = sorted(m for m in ('torch', 'gradio', 'librosa') if m in sys.modules); "
            "print(','.join(heavy)); print(' '.join(vc_app.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    heavy, names = done.stdout.splitlines()
    assert heavy == ""
    assert {"convert", "VoiceConverter", "load_bundle", "load_vocoder", "Voice", "blend"} <= set(names.split())


def test_front_door_names_are_the_library_objects():
    from vc_app.bundle import load_bundle
    from vc_app.converter import VoiceConverter
    from vc_app.voice import Voice, blend

    assert vc_app.VoiceConverter is VoiceConverter and vc_app.load_bundle is load_bundle
    assert vc_app.Voice is Voice and vc_app.blend is blend
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        vc_app.nothing_here  # noqa: B018 - the attribute access is the test


def test_readme_python_example_runs_as_written(speech_clips, tmp_path, monkeypatch):
    example = readme_python_example()
    assert len(example.strip().splitlines()) <= 6  # the README promises a few lines
    for name, clip in (("my_words.wav", "source"), ("their_voice.wav", "target"), ("their_voice_2.wav", "target2")):
        shutil.copy(speech_clips[clip], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    written = sf.info(str(tmp_path / "converted.wav"))
    source = sf.info(str(tmp_path / "my_words.wav"))
    assert written.samplerate == 22050 and abs(written.duration - source.duration) < 0.02
    wav = scope["wav"]
    assert isinstance(wav, torch.Tensor) and wav.dim() == 1 and torch.isfinite(wav).all()
    assert abs(wav.numel() / 22050 - source.duration) < 0.02


def test_convert_returns_the_waveform_without_an_output_and_refuses_a_bad_output_first(speech_clips, tiny_bundle,
                                                                                      tmp_path):
    wav = vc_app.convert(speech_clips["source"], speech_clips["target"], checkpoint=str(tiny_bundle),
                         vocoder="griffinlim:4", device="cpu")
    assert wav.dim() == 1 and wav.numel() > 22050
    with pytest.raises(VcAppError, match="one of the inputs"):  # refused before any model loads
        vc_app.convert(speech_clips["source"], speech_clips["target"], speech_clips["source"],
                       checkpoint=str(tmp_path / "no-such-bundle"))
