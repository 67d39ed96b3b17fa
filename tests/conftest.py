"""Shared fixtures: tiny random bundles and speech-like audio made on the spot (no downloads)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"


def pytest_configure(config):
    """Tiny test models run fastest on one thread, and do not stall when other work shares the cores.
    Saved voices go to a fresh folder, never the user's own (vc_app.voice.default_voices_dir). Tests never
    touch the network: the Hugging Face hub is an address on this machine that refuses."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
    config._vc_app_voices = tempfile.TemporaryDirectory(prefix="vc_app_test_voices_")
    os.environ["VC_APP_VOICES_DIR"] = config._vc_app_voices.name
    import torch

    torch.set_num_threads(1)


def tiny_model_config(**overrides):
    """A small AdaIN-VC config (same mechanisms, a few thousand times fewer weights)."""
    from vc_app.config import ModelConfig

    base = dict(c_h=16, c_content=8, c_speaker=8, c_bank=4, bank_size=4, n_conv_blocks=3, n_dense_blocks=2,
                subsample=(2, 2, 2), upsample=(2, 2, 2))
    base.update(overrides)
    return ModelConfig(**base)


def make_bundle(folder: Path, seed: int = 0, **overrides) -> Path:
    import torch

    from vc_app.bundle import save_bundle
    from vc_app.config import MelConfig
    from vc_app.models import AdaINVC

    torch.manual_seed(seed)
    model = AdaINVC(tiny_model_config(**overrides))
    return save_bundle(model, MelConfig(), folder)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A randomly initialised tiny bundle folder."""
    return make_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def synthetic_speech(seconds: float, rate: int, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """Speech-like audio without a TTS: a glottal-pulse train through moving formant resonators,
    with syllable-rate amplitude modulation and short pauses. (N,) float32, peak 0.5."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0_track = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = np.cumsum(f0_track / rate)
    source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64) + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    block = int(0.05 * rate)
    formants = [(500, 1500, 2500), (700, 1200, 2600), (300, 2200, 3000), (600, 900, 2400)]
    for start in range(0, n, block):
        seg = source[start:start + block]
        f1, f2, f3 = formants[(start // block // 4 + seed) % len(formants)]
        y = seg
        for f in (f1, f2, f3):
            r = np.exp(-np.pi * 90 / rate)
            a = [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r]
            y = lfilter([1 - r], a, y)
        out[start:start + block] = y
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    envelope[(t % 1.7) > 1.5] = 0.0
    out *= envelope
    return (0.5 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def speech_mel(seconds: float):
    """The project mel of `seconds` of synthetic speech at 22.05 kHz: (1, n_mels, T)."""
    import torch

    from vc_app.config import MelConfig
    from vc_app.mel import mel_spectrogram

    wav = torch.from_numpy(synthetic_speech(seconds, 22050)).float()
    return mel_spectrogram(wav, MelConfig()).unsqueeze(0)


def assert_joins_leave_no_seam(whole, windowed, joins, hop: int = 256) -> None:
    """Windowed vocoding equals the one-pass waveform (N,) to better than -40 dB, around each join frame and overall."""
    import torch

    assert windowed.shape == whole.shape
    power = whole.pow(2).mean()
    for join in joins:
        around = slice(join * hop - 2 * hop, join * hop + 2 * hop)
        error_db = 10 * torch.log10((windowed[around] - whole[around]).pow(2).mean() / power)
        assert error_db < -40, f"join at frame {join}: {error_db:.1f} dB"
    assert 10 * torch.log10((windowed - whole).pow(2).mean() / power) < -40


def tts(text: str, path: Path, voice: str = "en", rate: int = 22050) -> Path:
    """Speak `text` into `path` with espeak-ng (flite voices as 'flite:slt'); synthetic speech if neither exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.wav")
    made = False
    if voice.startswith("flite:") and shutil.which("flite"):
        made = subprocess.run(["flite", "-voice", voice.split(":", 1)[1], "-t", text, "-o", str(raw)],
                              capture_output=True).returncode == 0
    elif shutil.which("espeak-ng"):
        made = subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], capture_output=True).returncode == 0
    if made:
        data, sr = sf.read(str(raw), dtype="float32")
        raw.unlink()
        if sr != rate:
            import torch
            import torchaudio.functional as AF

            data = AF.resample(torch.from_numpy(data), sr, rate).numpy()
    else:
        data = synthetic_speech(max(1.5, 0.07 * len(text)), rate, f0=110 + 5 * (zlib.crc32(voice.encode()) % 20),
                                seed=zlib.crc32(text.encode()) % 1000)
    sf.write(str(path), data, rate)
    return path


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory) -> dict[str, Path]:
    """A source and two target voices, each a few seconds of speech."""
    root = tmp_path_factory.mktemp("speech")
    return {
        "source": tts("The quick brown fox jumps over the lazy dog near the river bank.", root / "source.wav"),
        "target": tts("She sells sea shells by the sea shore every single summer.", root / "target.wav",
                      voice="en+f3"),
        "target2": tts("Please call Stella and ask her to bring these things.", root / "target2.wav",
                       voice="en+f3"),
    }


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m vc_app ARGS` from this checkout."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "vc_app", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=str(REPO))


VOICES = {  # speaker -> (voice, gender): six clearly different synthetic voices
    "p225": ("flite:slt", "F"), "p226": ("flite:awb", "M"), "p227": ("flite:rms", "M"),
    "p228": ("en+f3", "F"), "p229": ("flite:kal", "M"), "p230": ("en-us+f4", "F"),
}
SENTENCES = (
    "Please call Stella and ask her to bring these things with her from the store.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
)


@pytest.fixture(scope="session")
def voice_corpus(tmp_path_factory) -> dict[str, list[tuple[Path, str]]]:
    """Six synthetic speakers (3 F, 3 M) x five sentences at 48 kHz: {speaker: [(wav, text), ...]}.

    Speaker names follow VCTK (p225...); `VOICES` gives each one's voice and gender.
    """
    root = tmp_path_factory.mktemp("voices")
    return {speaker: [(tts(text, root / speaker / f"{speaker}_{i + 1:03d}.wav", voice=voice, rate=48000), text)
                      for i, text in enumerate(SENTENCES)]
            for speaker, (voice, _) in VOICES.items()}


def tiny_train_overrides(**values) -> list[str]:
    """`--set` overrides for a tiny, fast training run (the sizes of `tiny_model_config`), plus `values`.

    Keys use "__" for ".": tiny_train_overrides(run__max_steps=30) -> [..., "run.max_steps=30"].
    """
    base = {"model.c_h": 16, "model.c_content": 8, "model.c_speaker": 8, "model.c_bank": 4, "model.bank_size": 4,
            "model.n_conv_blocks": 3, "model.n_dense_blocks": 2, "model.subsample": "[2,2,2]",
            "model.upsample": "[2,2,2]", "data.segment_frames": 32, "data.batch_size": 4, "data.num_workers": 0,
            "optim.lr": 0.003, "run.log_every": 1, "run.valid_every": 10, "run.save_every": 10,
            "run.sample_every": 0, "run.threads": 1, "adversary.c_h": 16, "adversary.n_layers": 2}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return [f"{k}={v}" for k, v in base.items()]
