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
