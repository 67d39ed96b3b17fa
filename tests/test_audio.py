"""Audio front end: any format/rate/channel count in, clear sentences for bad input, atomic writes."""

import numpy as np
import pytest
import soundfile as sf
import torch

from vc_app.audio import active_rms, load_audio, match_loudness, prepare_clip, write_audio
from vc_app.errors import VcAppError

from conftest import synthetic_speech


@pytest.mark.parametrize("rate,channels,fmt,subtype", [
    (8000, 1, "WAV", "PCM_16"), (16000, 2, "FLAC", "PCM_24"), (44100, 1, "WAV", "FLOAT"),
    (48000, 6, "WAV", "PCM_32"), (96000, 1, "OGG", None), (22050, 1, "MP3", None),
])
def test_reads_any_rate_channels_and_format_as_mono_22k(tmp_path, rate, channels, fmt, subtype):
    seconds = 1.0
    mono = synthetic_speech(seconds, rate)
    data = np.stack([mono * (0.5 + 0.1 * c) for c in range(channels)], axis=1)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(str(path), data, rate, format=fmt, subtype=subtype)
    wav = load_audio(path, 22050)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.numel() - 22050 * seconds) < 0.02 * 22050 + 1200  # mp3/ogg codecs add a little padding
    assert 0.05 < float(wav.abs().max()) <= 1.0


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty"),
    (b"this is plainly a text file, not audio" * 10, "not an audio file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 6, "not an audio file"),
])
def test_bad_files_give_one_sentence(tmp_path, content, expected):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(VcAppError, match=expected) as err:
        load_audio(path, 22050)
    assert "\n" not in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VcAppError, match="does not exist"):
        load_audio(tmp_path / "nope.wav", 22050)
    with pytest.raises(VcAppError, match="is a folder"):
        load_audio(tmp_path, 22050)


def test_silent_and_too_short_clips_are_refused(tmp_path):
    sf.write(str(tmp_path / "silent.wav"), np.zeros(22050, np.float32), 22050)
    with pytest.raises(VcAppError, match="silent"):
        prepare_clip(tmp_path / "silent.wav", 22050, "target", trim=True)
    short = np.zeros(22050, np.float32)
    short[1000:1000 + 2205] = synthetic_speech(0.1, 22050)
    sf.write(str(tmp_path / "short.wav"), short, 22050)
    with pytest.raises(VcAppError, match="at least 0.3 s"):
        prepare_clip(tmp_path / "short.wav", 22050, "target", trim=True)


def test_trim_for_targets_keeps_timing_for_sources(tmp_path):
    data = np.concatenate([np.zeros(22050), synthetic_speech(1.0, 22050), np.zeros(22050)]).astype(np.float32)
    sf.write(str(tmp_path / "padded.wav"), data, 22050)
    target = prepare_clip(tmp_path / "padded.wav", 22050, "target", trim=True)
    source = prepare_clip(tmp_path / "padded.wav", 22050, "source", trim=False)
    assert source.numel() == data.size
    assert target.numel() < 1.4 * 22050
    assert abs(float(target.abs().max()) - 0.95) < 1e-5


def test_match_loudness_restores_level():
    wav = torch.from_numpy(synthetic_speech(2.0, 22050))
    quiet = wav * 0.05
    restored = match_loudness(wav, active_rms(quiet))
    assert abs(active_rms(restored) / active_rms(quiet) - 1) < 1e-3


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out.wav"
    wav = torch.from_numpy(synthetic_speech(0.5, 22050))
    write_audio(out, wav, 22050)
    first = out.read_bytes()
    with pytest.raises(VcAppError, match="already exists"):
        write_audio(out, wav * 0.1, 22050)
    assert out.read_bytes() == first
    write_audio(out, wav * 0.1, 22050, overwrite=True)
    assert out.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp files left
    with pytest.raises(VcAppError, match="Cannot write .*does not exist"):
        write_audio(tmp_path / "no" / "such" / "dir.wav", wav, 22050)
    with pytest.raises(VcAppError, match=".wav, .flac or .ogg"):
        write_audio(tmp_path / "out.xyz", wav, 22050)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 16000])
def test_stream_blocks_equal_a_whole_file_read(tmp_path, rate):
    from vc_app.audio import AudioStream

    path = tmp_path / "long.wav"
    sf.write(str(path), np.stack([synthetic_speech(6.0, rate), synthetic_speech(6.0, rate, seed=3)], 1), rate)
    whole = load_audio(path, 22050)
    stream = AudioStream(path, 22050)
    assert stream.num_samples == whole.numel()
    joined = torch.cat(list(stream.blocks(30001)))
    assert joined.shape == whole.shape
    assert float((joined - whole).abs().max()) < 1e-4
    peak, rms, seconds = stream.level()
    assert abs(peak - float(whole.abs().max())) < 1e-4 and abs(rms - active_rms(whole)) / rms < 0.02


@pytest.mark.parametrize("sound_seconds,message", [(0.0, "is silent"), (0.2, "s of sound; at least 0.3 s"),
                                                   (0.5, "")])
def test_files_waveforms_and_streams_meet_one_silence_rule(tmp_path, sound_seconds, message):
    """The edge's file check (at the file's own rate), the converter's waveform check and its stream check
    (long sources) refuse the same clips with the same sentence."""
    from vc_app.audio import AudioStream, check_audio_file, check_clip, check_sound

    rate, name = 16000, "source clip clip.wav"
    t = np.arange(int(sound_seconds * rate)) / rate
    silence = np.zeros(rate, np.float32)
    path = tmp_path / "clip.wav"
    sf.write(str(path), np.concatenate([silence, 0.5 * np.sin(2 * np.pi * 220 * t), silence]).astype(np.float32), rate)
    verdicts = []
    for check in (lambda: check_audio_file(path, "source"),
                  lambda: check_clip(load_audio(path, 22050), 22050, name, trim=False),
                  lambda: check_sound(*AudioStream(path, 22050).level()[::2], name)):
        try:
            check()
            verdicts.append("")
        except VcAppError as err:
            verdicts.append(str(err))
    assert all(message in v and v.startswith(f"The {name}") for v in verdicts) if message else verdicts == [""] * 3


def test_clipping_is_a_flattened_peak_not_a_sample_touching_full_scale():
    from vc_app.audio import clips

    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    assert not clips(0.5 * tone)
    assert not clips(tone / np.abs(tone).max())  # a normalised file touches full scale at single samples
    spike = 0.1 * tone
    spike[1000] = 1.0
    assert not clips(spike)
    assert clips(np.clip(3 * tone, -1, 1))  # an over-driven gain flattens every peak
    assert clips(np.clip(1.05 * tone, -1, 1))  # even a slight overdrive leaves runs at full scale
