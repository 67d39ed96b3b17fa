"""Live conversion (vc_app.streaming, `vc-app live`): the stream follows the offline conversion at the latency
it reports, its blocks join without clicks, compute that falls behind drops blocks (counted) instead of
queueing them, and the simulation mode and bad inputs behave. No test needs a sound card."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
import torch

from vc_app.config import StreamConfig
from vc_app.streaming import LiveEngine, StreamingConverter, join_excess_db, mel_lag, simulate, stream_mel

from conftest import REPO

RATE = 22050


EXAMPLES = REPO / "vc_app" / "examples"


@pytest.fixture(scope="module")
def converter():
    """The shipped model (a random one's output hardly depends on its input's timing) with a quick vocoder."""
    from vc_app.converter import VoiceConverter

    return VoiceConverter.from_specs(None, "griffinlim:8", device="cpu")


@pytest.fixture(scope="module")
def voice(converter):
    return converter.voice(EXAMPLES / "arctic_slt_target.flac")


@pytest.fixture(scope="module")
def source():
    """3.6 s of real speech at the model's rate."""
    from vc_app.audio import load_audio

    return load_audio(EXAMPLES / "arctic_clb_source.flac", RATE)


def test_stream_follows_the_offline_conversion_at_the_latency_it_reports(converter, voice, source):
    """Away from the start (where the stream has no context yet), the streamed spectra correlate with the
    offline conversion's, and they line up exactly where `latency` says."""
    engine = LiveEngine(converter.stream(voice), threaded=False)
    heard = simulate(engine, source, realtime=False)
    assert heard.numel() == source.numel() + engine.latency_samples
    offline = converter.convert(source, voice)
    lag, correlation = mel_lag(heard, offline, converter.mel_cfg, longest=2 * engine.latency_samples,
                               skip_frames=130)
    assert engine.latency_samples == round(engine.latency * RATE)
    assert abs(lag - engine.latency_samples) <= 64  # the measure's resolution: 2 steps of 32 samples (1.5 ms)
    assert correlation > 0.9
    assert engine.latency < 0.25  # the bar: <= 250 ms from a sound entering to its conversion leaving
    assert engine.stats.dropped == 0


def test_output_does_not_depend_on_how_input_is_cut(converter, voice, source):
    """Same blocks, same output, bit for bit: pushing in blocks or in odd-sized pieces gives one signal."""
    stream = converter.stream(voice)
    whole = torch.cat([stream.push(source[i:i + stream.block_samples])
                       for i in range(0, source.numel(), stream.block_samples)])
    stream.reset()
    cuts = [0, 1, 700, 3001, 3002, 9000, 20000, source.numel()]
    pieces = torch.cat([stream.push(source[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert torch.equal(whole, pieces)
    assert stream.latency == pytest.approx((8 + 6) * 256 / RATE)


def test_running_statistics_bring_the_stream_closer_to_the_offline_conversion(converter, voice, source):
    """The norms' statistics carried from window to window (`StreamConfig.stats_frames`) make the streamed mel
    nearer the offline one than each window's own statistics do; 0 gives the window's own."""
    from vc_app.mel import mel_spectrogram

    stream = converter.stream(voice)
    with torch.inference_mode():
        offline = converter.model.convert(mel_spectrogram(source, converter.mel_cfg).unsqueeze(0), stream.speaker)
    distance = {}
    for frames in (0, StreamConfig().stats_frames):
        streamed = stream_mel(converter.stream(voice, StreamConfig(stats_frames=frames)), source)
        distance[frames] = float((streamed - offline[..., :streamed.shape[-1]]).abs()[..., 130:].mean())
    assert distance[StreamConfig().stats_frames] < 0.97 * distance[0], distance

    window = converter.stream(voice, StreamConfig(stats_frames=0))
    assert window.running is None
    converted, _ = window.convert_window(source[:window.window_samples])
    with torch.inference_mode():
        alone = converter.model.convert(mel_spectrogram(source[:window.window_samples], converter.mel_cfg)
                                        .unsqueeze(0), window.speaker)
    assert torch.equal(converted, alone)


class _IdentityModel(torch.nn.Module):
    """Converts a mel into itself: what comes out of a window is what went in."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def convert(self, mel: torch.Tensor, speaker: torch.Tensor, running=None) -> torch.Tensor:
        return mel


@pytest.mark.parametrize("lookahead", [2, 6, 20])
def test_stream_mel_puts_each_block_at_its_place_in_the_source(source, lookahead):
    """With a model that changes nothing, the block-by-block mel is the source's own mel frame for frame (the
    last two frames aside, where the stream hears silence after the source): every block lands where
    `stream_mel` says, so it can be vocoded in one pass and compared with the offline conversion."""
    from vc_app.config import MelConfig
    from vc_app.mel import mel_spectrogram

    mel = MelConfig()
    clip = source[: RATE]
    stream = StreamingConverter(_IdentityModel(), None, torch.zeros(4), mel,
                                StreamConfig(context_frames=16, lookahead_frames=lookahead))
    streamed = stream_mel(stream, clip)
    whole = mel_spectrogram(clip, mel).unsqueeze(0)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed[..., :-2], whole[..., :-2], atol=1e-4, rtol=1e-4)


def test_blocks_join_without_clicks(converter, voice, source):
    """Around each block join the output is no rougher than elsewhere (within 3 dB); without the cross-fade
    the same measure finds the joins (so it would catch a broken one)."""
    results = {}
    for crossfade in (StreamConfig().crossfade_samples, 0):
        stream = converter.stream(voice, StreamConfig(crossfade_samples=crossfade))
        engine = LiveEngine(stream, threaded=False)
        heard = simulate(engine, source, realtime=False)
        # a block's output starts at (k + 1) * block + deadline; only joins inside the sound count
        first = 2 * stream.block_samples + engine.deadline
        results[crossfade] = join_excess_db(heard[: source.numel()], stream.block_samples, first)
    assert results[StreamConfig().crossfade_samples] < 3.0, results
    assert results[0] > results[StreamConfig().crossfade_samples] + 3.0, results


def test_drops_are_counted_only_when_compute_is_slower_than_real_time(converter, voice, source, monkeypatch):
    """Compute is made to take a known share of each block's duration (sleeping, so the test does not hang on how
    busy the machine is: whether the real model keeps up is bench/'s question): a fifth of it drops nothing, more
    than all of it drops every block but the first, without a queue building up."""
    clip = source[: 2 * RATE]
    process = StreamingConverter.process

    def quick(self, block):
        time.sleep(0.2 * self.block_samples / self.sample_rate)  # compute well within real time
        return torch.zeros(self.block_samples)

    monkeypatch.setattr(StreamingConverter, "process", quick)
    engine = LiveEngine(converter.stream(voice))
    heard = simulate(engine, clip, realtime=True)
    engine.close()
    assert engine.stats.dropped == 0 and engine.stats.blocks > 10

    def slow(self, block):
        time.sleep(1.3 * self.block_samples / self.sample_rate)  # compute slower than real time
        return process(self, block)

    monkeypatch.setattr(StreamingConverter, "process", slow)
    engine = LiveEngine(converter.stream(voice))
    started = time.perf_counter()
    slowed = simulate(engine, clip, realtime=True)
    engine.close()
    # the latency stays what it says (no queue builds up), the run takes as long as the clip, drops are counted
    assert slowed.numel() == heard.numel()
    assert time.perf_counter() - started < clip.numel() / RATE + 1.5
    assert engine.stats.dropped >= engine.stats.blocks - 1 > 0


def test_cli_simulation_writes_what_a_listener_hears(tiny_bundle, speech_clips, tmp_path):
    from conftest import run_cli

    out = tmp_path / "heard.wav"
    done = run_cli("live", "--target", str(speech_clips["target"]), "--input", str(speech_clips["source"]),
                   "--output", str(out), "--checkpoint", str(tiny_bundle), "--vocoder", "griffinlim:8",
                   "--no-wait", "--threads", "1")
    assert done.returncode == 0, done.stderr
    data, rate = sf.read(str(out))
    source, source_rate = sf.read(str(speech_clips["source"]))
    latency = StreamConfig().block_frames + StreamConfig().lookahead_frames
    deadline = 3 * 512  # compute_share 0.75 of a 2048-sample block
    assert rate == RATE == source_rate
    assert len(data) == len(source) + latency * 256 + deadline
    assert "latency 232 ms" in done.stdout and "0 dropped" in done.stdout
    assert np.abs(data).max() > 0.01


def test_default_vocoder_is_picked_by_whether_it_keeps_up(converter, voice, monkeypatch, capsys):
    import vc_app.streaming
    from vc_app.commands import live

    monkeypatch.setattr(vc_app.streaming, "measure_compute",
                        lambda stream: (0.9 if stream.vocoder.name == "hifigan:universal" else 0.1)
                        * stream.block_samples / RATE)
    stream = live.pick_vocoder(converter, voice, StreamConfig())
    said = capsys.readouterr().out
    assert stream.vocoder.name == "griffinlim:32"
    assert "hifigan:universal needs 90%" in said and "griffinlim" in said


@pytest.mark.parametrize("args, sentence", [
    ([], "needs the voice to speak in"),
    (["--target", "T", "--input", "x.wav"], "needs both --input FILE and --output FILE"),
    (["--target", "T", "--no-wait"], "--no-wait only applies to a simulation"),
    (["--target", "T", "--block-ms", "5"], "--block-ms must be between"),
    (["--target", "T"], "No microphone found"),
])
def test_bad_options_are_one_sentence(args, sentence, speech_clips, capsys, monkeypatch):
    import sounddevice

    from vc_app.cli import main

    def no_device(device=None, kind=None):  # as PortAudio answers on a machine without a sound card
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_device)

    args = [str(speech_clips["target"]) if a == "T" else a for a in args]
    assert main(["live", *args]) == 1
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err and err.count("\n") == 1


def test_a_silent_input_is_one_sentence(tiny_bundle, speech_clips, tmp_path, capsys):
    from vc_app.cli import main

    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(RATE), RATE)
    code = main(["live", "--target", str(speech_clips["target"]), "--input", str(silent), "--output",
                 str(tmp_path / "o.wav"), "--checkpoint", str(tiny_bundle), "--vocoder", "griffinlim:4", "--no-wait"])
    err = capsys.readouterr().err
    assert code == 1 and "silent" in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()


def test_missing_portaudio_is_one_sentence(monkeypatch, speech_clips, capsys):
    import builtins

    from vc_app.cli import main

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    assert main(["live", "--target", str(speech_clips["target"])]) == 1
    assert "needs the PortAudio library: on Debian or Ubuntu, apt-get install libportaudio2" in capsys.readouterr().err
