"""AdaIN-VC mechanisms, proven on small random models."""

import pytest
import torch

from vc_app.config import ModelConfig
from vc_app.models import AdaIN, AdaINVC, InstanceNorm, SpeakerClassifier, VectorQuantizer

from conftest import tiny_model_config


def test_instance_norm_gives_zero_mean_unit_variance_per_channel():
    x = torch.randn(4, 16, 50) * (torch.rand(4, 16, 1) * 10 + 0.5) + torch.randn(4, 16, 1) * 5
    y = InstanceNorm(16)(x)
    assert torch.allclose(y.mean(-1), torch.zeros(4, 16), atol=1e-5)
    assert torch.allclose(y.var(-1, unbiased=False), torch.ones(4, 16), atol=1e-3)


def test_content_code_ignores_a_per_band_constant_offset():
    torch.manual_seed(0)
    model = AdaINVC(ModelConfig()).eval()
    mel = torch.randn(2, 80, 100) - 5
    tilt = torch.linspace(-2, 3, 80).view(1, 80, 1)  # a global spectral envelope change
    with torch.no_grad():
        a, b = model.content(mel), model.content(mel + tilt)
        sa, sb = model.speaker(mel), model.speaker(mel + tilt)
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(sa, sb, atol=1e-3)  # the speaker encoder does see it


def test_adain_sets_channel_mean_and_std_from_the_speaker_vector():
    torch.manual_seed(0)
    adain = AdaIN(channels=12, c_cond=5)
    x = torch.randn(3, 12, 400) * 4 + 2
    s = torch.randn(3, 5)
    gamma, beta = adain.style(s)
    y = adain(x, s)
    assert torch.allclose(y.mean(-1), beta, atol=1e-4)
    assert torch.allclose(y.std(-1, unbiased=False), gamma.abs(), atol=1e-3)


@pytest.mark.parametrize("frames", [1, 7, 8, 13, 64, 101, 128, 333])
def test_decoder_output_has_as_many_frames_as_the_input(frames):
    model = AdaINVC(tiny_model_config()).eval()
    mel = torch.randn(2, 80, frames)
    with torch.no_grad():
        out = model.convert(mel, model.speaker(mel))
        train_out = model.train()(mel)
    assert out.shape == (2, 80, frames)
    assert train_out.recon.shape == (2, 80, frames)


def test_official_sizes_and_config_ownership():
    cfg = ModelConfig()
    assert (cfg.n_mels, cfg.c_h, cfg.kernel_size, cfg.bank_size, cfg.n_conv_blocks) == (80, 128, 5, 8, 6)
    model = AdaINVC(ModelConfig(n_mels=40, c_h=32, c_bank=8, c_content=16, c_speaker=24))
    mel = torch.randn(1, 40, 64)
    assert model.speaker(mel).shape == (1, 24)
    assert model.content(mel).shape == (1, 16, 8)
    with pytest.raises(ValueError):
        ModelConfig(subsample=(2, 2, 2, 2, 1, 1), upsample=(2, 1, 2, 1, 2, 1))


def test_several_target_clips_give_the_mean_speaker_vector():
    model = AdaINVC(tiny_model_config()).eval()
    clips = [torch.randn(80, 50), torch.randn(80, 90)]
    with torch.no_grad():
        mean = model.speaker_from_clips(clips)
        each = [model.speaker(c.unsqueeze(0))[0] for c in clips]
    assert torch.allclose(mean, (each[0] + each[1]) / 2, atol=1e-6)


def test_internal_scaling_round_trips():
    model = AdaINVC(tiny_model_config())
    model.set_mel_stats(torch.linspace(-8, -2, 80), torch.linspace(1, 3, 80))
    mel = torch.randn(2, 80, 10)
    assert torch.allclose(model.unscale(model.scale(mel)), mel, atol=1e-5)


def test_vector_quantizer_snaps_to_codes_and_passes_gradients():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=16, dim=4, ema=True)
    z = torch.randn(2, 4, 30, requires_grad=True)
    vq.train()(z)  # initialises the codebook from data and takes one EMA step
    out = vq.eval()(z)
    codebook = vq.embedding
    flat = out.quantized.detach().permute(0, 2, 1).reshape(-1, 4)
    assert all(any(torch.allclose(v, c, atol=1e-5) for c in codebook) for v in flat)
    out.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # straight-through
    assert 1 <= float(out.perplexity) <= 16 and out.codes.shape == (2, 30)


def test_dead_codes_are_reset():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=8, dim=2, ema=True, decay=0.5, dead_code_threshold=0.05).train()
    z = torch.zeros(1, 2, 40)
    z[..., :20] = 3.0
    for _ in range(10):
        vq(z)
    vq.embedding[5] = 100.0  # a code far from all data: never chosen
    vq.cluster_size[5] = 0.0
    vq(z)
    assert float(vq.embedding[5].abs().max()) <= 3.0 + 1e-4


def test_speaker_classifier_shapes():
    clf = SpeakerClassifier(c_in=8, c_h=16, n_speakers=5)
    assert clf(torch.randn(3, 8, 11)).shape == (3, 5)


def test_running_statistics_average_a_stream_of_windows_like_the_whole_signal():
    """Full windows of one signal, folded in turn: the last window is normalised by the statistics of all of
    them together (the cumulative phase), not by its own."""
    from vc_app.models.blocks import RunningStats

    torch.manual_seed(0)
    windows = [torch.randn(1, 3, 20) * (1 + i) + i for i in range(4)]  # every window has other statistics
    running, norm = RunningStats(frames=1000, block_frames=20, window_frames=20), InstanceNorm(3)
    for w in windows:
        running.start(20)
        y = norm(w, running=running)
    whole = torch.cat(windows, dim=-1)
    mean, var = whole.mean(-1, keepdim=True), whole.var(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(y, (windows[-1] - mean) / torch.sqrt(var + norm.eps), atol=1e-5, rtol=1e-5)
    running.reset()
    running.start(20)
    torch.testing.assert_close(norm(windows[-1], running=running), norm(windows[-1]), atol=1e-5, rtol=1e-5)


def test_running_statistics_follow_a_change_with_their_time_constant_and_skip_pauses():
    """After the cumulative phase the average is exponential (a window weighs block / frames); windows
    with too few active steps leave it alone; a short window at the stream's start weighs by its length."""
    from vc_app.models.blocks import RunningStats

    running, norm = RunningStats(frames=40, block_frames=10, window_frames=20), InstanceNorm(1)
    level = lambda value: torch.full((1, 1, 20), float(value)) + torch.tensor([1.0, -1.0]).repeat(10)  # noqa: E731

    def fold(x, active=None, frames=20):
        running.start(frames)
        norm(x, active, running=running)
        return float(running.slots[0][0])

    assert fold(level(0)) == pytest.approx(0)
    assert [round(fold(level(0)), 6) for _ in range(3)] == [0, 0, 0]  # 4 windows: 4 * 10 = 40 frames
    assert fold(level(8)) == pytest.approx(8 * 10 / 40)  # now exponential: weight 0.25
    pause = torch.zeros(1, 1, 20, dtype=torch.bool)
    pause[..., :3] = True  # 3 active steps: fewer than MIN_ACTIVE_STEPS
    assert fold(level(100), pause) == pytest.approx(2)

    running.reset()
    fold(level(0), frames=2)
    assert fold(level(4), frames=2) == pytest.approx(2)  # two short windows weigh alike
    assert fold(level(10)) == pytest.approx(2 + (10 - 2) * 1 / 1.2)  # a full window weighs ten of them
