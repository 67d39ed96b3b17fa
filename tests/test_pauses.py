"""Silent pauses: the model's statistics over time taken on the active frames only (`ModelConfig.norm_stats`).

A synthetic clip with known pauses (two words of speech-like sound over a -55 dB noise floor) shows what the
option is for: with "active" the silence share of a clip cannot move the instance norms and the speaker
vector, and the shipped model leaves the pauses quieter. With the default "all", a bundle converts exactly
as it did before the option existed.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vc_app.bundle import load_bundle, save_bundle
from vc_app.config import MelConfig, ModelConfig
from vc_app.evaluate.levels import MIN_FRAMES, PAUSE_BELOW_DB, frame_levels
from vc_app.mel import mel_spectrogram
from vc_app.models import AdaINVC
from vc_app.models.adain_vc import frame_levels_db
from vc_app.models.blocks import pixel_shuffle_1d

from conftest import REPO, SHARED_SPEECH, synthetic_speech, tiny_model_config

RATE = 22050
MEL = MelConfig()
SHIPPED = REPO / "checkpoints" / "adainvc-speech14"


def clip_with_pauses(pause: int = 96, lead: int = 24, tail: int = 40) -> torch.Tensor:
    """`lead` frames of floor, a 1 s word, `pause` (>= 96) frames of floor, another 1 s word, `tail` frames of
    floor: (N,) float32 at 22 050 Hz.

    The floor is white noise 55 dB below the words' peak. Each part draws its own noise, and the first and last
    48 frames of the pause are parts of their own, so clips with different pauses differ only in the middle
    of the pause: more than 48 frames (beyond what a tiny model sees) from either word.
    """
    hop, edge = MEL.hop_length, 48
    words = [synthetic_speech(1.0, RATE, seed=seed) for seed in (1, 2)]
    parts = [np.zeros(lead * hop), words[0], np.zeros(edge * hop), np.zeros((pause - 2 * edge) * hop),
             np.zeros(edge * hop), words[1], np.zeros(tail * hop)]
    noisy = [part + 0.5 * 10 ** (-55 / 20) * np.random.default_rng(i).standard_normal(part.size)
             for i, part in enumerate(parts)]
    return torch.from_numpy(np.concatenate(noisy)).float()


def mel_of(wav: torch.Tensor) -> torch.Tensor:
    return mel_spectrogram(wav, MEL).unsqueeze(0)


def active_model(model: AdaINVC, norm_stats: str = "active") -> AdaINVC:
    """The same weights with another `norm_stats`."""
    other = AdaINVC(dataclasses.replace(model.cfg, norm_stats=norm_stats)).eval()
    other.load_state_dict(model.state_dict())
    return other


def test_active_frames_are_the_frames_the_pause_level_does_not_count():
    """The model's active frames are exactly the complement of `vc_app.evaluate.levels`'s pauses; the frames
    `_pad` adds after the clip are never active."""
    wav = clip_with_pauses()
    model = AdaINVC(tiny_model_config(norm_stats="active"))
    mel = mel_of(wav)
    active = model.active_frames(mel)
    assert active is not None and active.dtype == torch.bool
    measured = frame_levels(wav, MEL) > -PAUSE_BELOW_DB
    assert torch.equal(active[0, 0, :mel.shape[-1]], measured)
    assert active.shape[-1] % model.cfg.frames_per_code == 0 and not active[..., mel.shape[-1]:].any()
    assert 0.4 < measured.float().mean() < 0.8  # the clip has both words and pauses
    assert AdaINVC(tiny_model_config()).active_frames(mel) is None  # "all": no mask at all


def test_active_statistics_ignore_how_long_the_pauses_are():
    """Lengthening the pause between two words from 96 to 288 frames (1.1 to 3.3 s; by whole content steps, so
    the second word keeps its phase) leaves the statistics over the active frames as they were: with "active"
    the first word's content code, the speaker vector and the converted first word stay put; with "all" the
    added silence moves every instance norm and the speaker encoder's average, and all three move."""
    torch.manual_seed(0)
    model_all = AdaINVC(tiny_model_config()).eval()
    model_active = active_model(model_all)
    short, long = mel_of(clip_with_pauses(pause=96)), mel_of(clip_with_pauses(pause=288))
    word = 24 + RATE // MEL.hop_length  # the first word ends here; the tiny model sees < 48 frames around

    def drift(model: AdaINVC) -> list[float]:
        with torch.no_grad():
            pairs = [[model.content(m)[..., :word // model.cfg.frames_per_code] for m in (short, long)],
                     [model.speaker(m) for m in (short, long)],
                     [model.convert(m, model.speaker(short))[..., :word] - m[..., :word] for m in (short, long)]]
        return [float((a - b).norm() / a.norm()) for a, b in pairs]

    for moved_all, moved_active in zip(drift(model_all), drift(model_active)):
        assert moved_active < 2e-3 and moved_all > 0.03, (moved_all, moved_active)


def _mel_pause_level(source: torch.Tensor, output: torch.Tensor) -> tuple[float, float]:
    """The pause level (`vc_app.evaluate.levels.pause_level`) on mels (1, n_mels, T), and the mean L1 of the
    output on the other (active) frames."""
    src, out = (frame_levels_db(m.double())[0].clamp(min=-80) for m in (source, output))
    pauses = src <= -PAUSE_BELOW_DB
    assert int(pauses.sum()) >= MIN_FRAMES
    l1 = float((output[0][:, ~pauses] - source[0][:, ~pauses]).abs().mean())
    return float(out[pauses].mean() - src[pauses].mean()), l1


HELD_OUT = ("vcc2018/VCC2TF1/30001.flac", "vcc2018/VCC2SF3/30001.flac", "arctic/clb/arctic_a0002.flac",
            "vcc2018/VCC2SM3/30001.flac")  # speakers the shipped model never trained on, with clear pauses


@pytest.mark.skipif(not SHARED_SPEECH.is_dir(), reason="../shared/data/speech is not present")
def test_shipped_model_leaves_real_pauses_quieter_with_active_statistics():
    """The shipped weights, unchanged, on real speech of held-out speakers: each clip converted to its own voice
    (the target clip trimmed, as `vc-app convert` reads it) has quieter pauses under "active", and its speech
    frames are rebuilt no worse (mel domain, no vocoder, no judge)."""
    from vc_app.audio import prepare_clip

    model = load_bundle(SHIPPED).model
    stats = {norm_stats: active_model(model, norm_stats) for norm_stats in ("all", "active")}
    measured: dict[str, list[tuple[float, float]]] = {"all": [], "active": []}
    for clip in HELD_OUT:
        source, target = (mel_of(prepare_clip(SHARED_SPEECH / clip, RATE, "source", trim=trim))
                          for trim in (False, True))
        for norm_stats, m in stats.items():
            with torch.no_grad():
                measured[norm_stats].append(_mel_pause_level(source, m.convert(source, m.speaker(target))))
    for (pause_all, _), (pause_active, _) in zip(measured["all"], measured["active"]):
        assert pause_active < pause_all - 2.0, measured
    (pause_all, l1_all), (pause_active, l1_active) = (np.mean(measured[k], axis=0) for k in ("all", "active"))
    assert pause_active < pause_all - 5.0 and l1_active < l1_all, measured


def test_active_statistics_train_and_round_trip_through_a_bundle(tmp_path):
    """The training forward pass (consistency and conversions included, bf16 autocast as on CPUs that have it)
    runs and back-propagates with "active"; a bundle keeps the option and converts the same after loading."""
    torch.manual_seed(0)
    model = AdaINVC(tiny_model_config(norm_stats="active", active_db=30.0)).train()
    mel = torch.cat([mel_of(clip_with_pauses())[..., i:i + 64] for i in (0, 100)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(mel, consistency=True, conversions=True)
    loss = F.l1_loss(out.recon.float(), model.scale(mel)) + out.converted_speaker.float().pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.decoder.parameters())
    folder = save_bundle(model.eval(), MEL, tmp_path / "active")
    assert json.loads((folder / "config.json").read_text())["model"]["norm_stats"] == "active"
    loaded = load_bundle(folder).model
    assert (loaded.cfg.norm_stats, loaded.cfg.active_db) == ("active", 30.0)
    with torch.no_grad():
        assert torch.equal(loaded.convert(mel, loaded.speaker(mel)), model.convert(mel, model.speaker(mel)))
    with pytest.raises(ValueError, match="norm_stats"):
        ModelConfig(norm_stats="voiced")


# -- the default is today's model, bit for bit ---------------------------------------------------------------
def _reference_convert(model: AdaINVC, mel: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
    """AdaINVC.convert as it was before `norm_stats` (plain instance norms over every frame), from the model's
    own layers: mel (B, n_mels, T) raw, speaker (B, c_speaker) -> (B, n_mels, T)."""
    step = model.cfg.frames_per_code
    extra = max(-(-mel.shape[-1] // step), 2) * step - mel.shape[-1]
    x = model.scale(F.pad(mel, (0, extra), mode="replicate") if extra else mel)
    enc = model.content_encoder
    h = enc.act(F.instance_norm(enc.in_conv(enc.bank(F.instance_norm(x)))))
    for block in enc.blocks:
        y = block.act(F.instance_norm(block.conv1(h)))
        y = block.act(F.instance_norm(block.conv2(y)))
        h = (F.avg_pool1d(h, block.stride, ceil_mode=True) if block.stride > 1 else h) + y
    content = enc.mean(h)
    dec = model.decoder
    h = dec.act(F.instance_norm(dec.in_conv(content)))
    for block in dec.blocks:
        def adain(module, v):
            gamma, beta = module.style(speaker)
            return gamma.unsqueeze(-1) * F.instance_norm(v) + beta.unsqueeze(-1)
        y = block.conv2(block.act(adain(block.adain1, block.conv1(h))))
        if block.upsample > 1:
            y = pixel_shuffle_1d(y, block.upsample)
            h = F.interpolate(h, scale_factor=block.upsample, mode="nearest")
        h = h + block.act(adain(block.adain2, y))
    return model.unscale(dec.out_conv(h))[..., :mel.shape[-1]]


def _reference_speaker(model: AdaINVC, mel: torch.Tensor) -> torch.Tensor:
    """The speaker vector as before `norm_stats` (the mean over every step): (B, n_mels, T) -> (B, c_speaker)."""
    enc = model.speaker_encoder
    h = enc.act(enc.in_conv(enc.bank(model.scale(mel))))
    for block in enc.conv_blocks:
        y = block.act(block.conv2(block.act(block.conv1(h))))
        h = (F.avg_pool1d(h, block.stride, ceil_mode=True) if block.stride > 1 else h) + y
    h = h.mean(dim=-1)
    for block in enc.dense_blocks:
        h = h + block.act(block.linear2(block.act(block.linear1(h))))
    return enc.out(h)


def test_old_bundles_load_and_convert_bit_exactly():
    """The shipped bundle's config.json predates the option: it loads with "all", and its speaker vectors and
    conversions (and the training pass's reconstruction) equal, bit for bit, the computation without it."""
    assert "norm_stats" not in json.loads((SHIPPED / "config.json").read_text())["model"]
    model = load_bundle(SHIPPED).model
    assert model.cfg.norm_stats == "all"
    source, target = mel_of(clip_with_pauses()), mel_of(clip_with_pauses(pause=144))[..., 20:301]
    with torch.no_grad():
        speaker = model.speaker(target)
        assert torch.equal(speaker, _reference_speaker(model, target))
        assert torch.equal(model.convert(source, speaker), _reference_convert(model, source, speaker))
        assert torch.equal(model.unscale(model(source).recon), _reference_convert(model, source, model.speaker(source)))


def test_a_segment_with_a_few_active_frames_stays_finite():
    """A 128-frame training segment of near silence with a short burst (7 active frames: one step at the
    decoder's coarsest resolution) is normalised over all of its steps there, not by a variance of about 0."""
    from vc_app.models.blocks import MIN_ACTIVE_STEPS, active_instance_norm

    torch.manual_seed(0)
    mel = torch.full((2, 80, 128), -11.0) + 0.01 * torch.randn(2, 80, 128)
    mel[0, :, 60:67] = -2.0  # a click: 7 loud frames
    model = AdaINVC(ModelConfig(norm_stats="active")).eval()
    assert int(model.active_frames(mel)[0].sum()) == 7
    with torch.no_grad():
        out = model.convert(mel, model.speaker(mel))
    assert torch.isfinite(out).all()
    x = torch.randn(1, 4, 16)
    one = torch.zeros(1, 1, 16, dtype=torch.bool)
    one[..., 5] = True
    assert torch.equal(active_instance_norm(x, one, 1e-5), active_instance_norm(x, ~one | one, 1e-5))
    enough = torch.zeros(1, 1, 16, dtype=torch.bool)
    enough[..., :MIN_ACTIVE_STEPS] = True
    assert not torch.equal(active_instance_norm(x, enough, 1e-5), active_instance_norm(x, ~enough | enough, 1e-5))
