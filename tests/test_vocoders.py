"""Hub vocoders (HiFi-GAN jik876 + SpeechBrain, BigVGAN v1 + v2): tiny random generators saved in the real
file layouts, as local folders and in a hand-built offline hub cache, loaded through the public spec path."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders import bigvgan, hifigan, load_vocoder, vocoder_choices
from vc_app.vocoders.generator import mrf_config_from_dict
from vc_app.vocoders.neural import NeuralVocoder
from vc_app.vocoders.weights import load_generator

from conftest import run_cli, synthetic_speech

pytestmark = [pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")]

HOP = 256
OUR_MEL = {"sampling_rate": 22050, "hop_size": 256, "num_mels": 80, "n_fft": 1024, "win_size": 1024, "fmin": 0,
           "fmax": 8000}
# tiny sizes with the real structure (upsampling product = hop 256)
HIFI_TINY = {
    "1": {"resblock": "1", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
          "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5],
          "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]},
    "2": {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
          "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5],
          "resblock_dilation_sizes": [[1, 2], [2, 6]]},
}
BIGVGAN_TINY = {"resblock": "1", "upsample_rates": [4, 4, 4, 4], "upsample_kernel_sizes": [8, 8, 8, 8],
                "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5],
                "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "snake_logscale": True}
BIGVGAN_VERSIONS = {
    "v2": {"activation": "snakebeta", "use_tanh_at_final": False, "use_bias_at_final": False},
    "v1": {"activation": "snake"},  # tanh and conv_post bias by default, as the v1 configs
}
SB_YAML = """\
# Generator parameters (the layout of speechbrain/tts-hifigan-libritts-22050Hz)
in_channels: 80
out_channels: 1
resblock_type: "1"
resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5]]
resblock_kernel_sizes: [3, 5]
upsample_kernel_sizes: [16, 16, 8]
upsample_initial_channel: 32
upsample_factors: [8, 8, 4]
inference_padding: 5
cond_channels: 0
conv_post_bias: True
{mel}
generator: !new:speechbrain.lobes.models.HifiGAN.HifiganGenerator
  in_channels: !ref <in_channels>
  out_channels: !ref <out_channels>
  resblock_type: !ref <resblock_type>
  resblock_dilation_sizes: !ref <resblock_dilation_sizes>
  resblock_kernel_sizes: !ref <resblock_kernel_sizes>
  upsample_kernel_sizes: !ref <upsample_kernel_sizes>
  upsample_initial_channel: !ref <upsample_initial_channel>
  upsample_factors: !ref <upsample_factors>
  inference_padding: !ref <inference_padding>
  cond_channels: !ref <cond_channels>
  conv_post_bias: !ref <conv_post_bias>

modules:
  generator: !ref <generator>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
  loadables:
    generator: !ref <generator>
"""
SB_MEL_BLOCK = """
mel_spectogram: !name:speechbrain.lobes.models.HifiGAN.mel_spectogram
  sample_rate: {rate}
  hop_length: 256
  n_fft: 1024
  n_mels: 80
  f_min: 0
  f_max: 8000
"""
SB_REPO = "speechbrain/tts-hifigan-libritts-22050Hz"
BIGVGAN_REPO = "nvidia/bigvgan_v2_22khz_80band_fmax8k_256x"
NAMED = {SB_REPO: "hifigan:speechbrain-libritts", BIGVGAN_REPO: "bigvgan:v2-22khz"}  # the hub vocoders' names
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# -- tiny checkpoints in the real layouts ------------------------------------------------
def weight_normed(model: nn.Module, *, parametrized: bool = False) -> nn.Module:
    """Put weight norm on every conv (as upstream training does) and randomise g, Snake alpha and beta."""
    for module in list(model.modules()):
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            if parametrized:
                nn.utils.parametrizations.weight_norm(module)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nn.utils.weight_norm(module)
    randomised(model)
    return model.eval()


def randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("weight_g", "original0")):
                p.mul_(0.5 + torch.rand_like(p))
            elif name.endswith(("alpha", "beta")):
                p.normal_(0.0, 0.3)
    return model.eval()


def write_jik876(folder, resblock="1", seed=0):
    torch.manual_seed(seed)
    config = {**HIFI_TINY[resblock], **OUR_MEL}
    model = weight_normed(hifigan.build_generator(mrf_config_from_dict(config)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({"generator": model.state_dict()}, folder / "g_00001000")
    torch.save({"generator": {}}, folder / "g_00000500")  # an older step that must not be picked
    return model


def write_speechbrain(folder, seed=0, rate=None):
    torch.manual_seed(seed)
    cfg = mrf_config_from_dict(HIFI_TINY["1"])
    model = weight_normed(hifigan.build_generator(cfg, speechbrain=True))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(SB_YAML.format(mel=SB_MEL_BLOCK.format(rate=rate) if rate else ""))
    torch.save(model.state_dict(), folder / "generator.ckpt")
    return model


def write_bigvgan(folder, version="v2", seed=0, fused=False):
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**BIGVGAN_TINY, **BIGVGAN_VERSIONS[version], **OUR_MEL}))
    model = bigvgan.build_generator(bigvgan.read_config(folder / "config.json", "test")[0])
    model = randomised(model) if fused else weight_normed(model)
    torch.save({"generator": model.state_dict()}, folder / "bigvgan_generator.pt")
    return model


def to_hub_cache(cache, repo_id, folder):
    """Copy a folder into huggingface_hub's cache layout: models--org--name/refs/main + snapshots/<commit>/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT, dirs_exist_ok=True)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty hub cache, offline (huggingface_hub reads its env at import, so patch its constants too)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny generators: thread start-up and barriers cost more than they save (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def a_mel(frames=23, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 80, frames, generator=g) * 2 - 5


WRITERS = {
    "jik876-type1": (lambda f: write_jik876(f, "1"), "hifigan", "someone/hifigan-v1-tiny"),
    "jik876-type2": (lambda f: write_jik876(f, "2"), "hifigan", "someone/hifigan-v3-tiny"),
    "speechbrain": (lambda f: write_speechbrain(f), "hifigan", SB_REPO),
    "bigvgan-v2": (lambda f: write_bigvgan(f, "v2"), "bigvgan", BIGVGAN_REPO),
    "bigvgan-v1-fused": (lambda f: write_bigvgan(f, "v1", fused=True), "bigvgan", "nvidia/bigvgan_base_22khz_80band"),
}


def reference_output(kind, model, mel):
    """What the upstream weight-normed generator makes of our mel, aligned as the vocoder promises."""
    with torch.no_grad():
        if kind != "speechbrain":
            return model(mel).squeeze(1)
        padded = model(nn.functional.pad(mel, (5, 5), mode="replicate")).squeeze(1)
        start = 5 * HOP - 128  # SpeechBrain's 5 padding frames trimmed, its centred frames delayed by hop / 2
        return padded[..., start:start + mel.shape[-1] * HOP]


# -- loading through the public path -------------------------------------------------------
@pytest.mark.parametrize("where", ["folder", "hub"])
@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_vocodes_from_folder_and_hub_cache(kind, where, tmp_path, offline_cache):
    write, family, repo_id = WRITERS[kind]
    folder = tmp_path / repo_id.split("/")[1]
    model = write(folder)
    if where == "hub":
        to_hub_cache(offline_cache, repo_id, folder)
        spec = NAMED.get(repo_id, f"{family}:{repo_id}")
    else:
        spec = f"{family}:{folder}"
    vocoder = load_vocoder(spec, MelConfig())
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels) == (22050, 256, 80)
    mel = a_mel()
    wav = vocoder(mel)
    assert wav.shape == (1, 23 * HOP)
    assert torch.isfinite(wav).all() and wav.abs().max() <= 1.0
    assert torch.equal(wav, vocoder(mel))  # deterministic
    assert torch.allclose(wav, reference_output(kind, model, mel), atol=1e-5)


def test_weight_norm_fusion_equals_weight_normed_forward():
    mel = a_mel(frames=12)
    torch.manual_seed(3)
    cases = [(lambda: hifigan.build_generator(mrf_config_from_dict(HIFI_TINY["1"])), False),
             (lambda: hifigan.build_generator(mrf_config_from_dict(HIFI_TINY["2"]), speechbrain=True), True)]
    cfg = bigvgan.BigVGANConfig(mrf=mrf_config_from_dict(BIGVGAN_TINY, conv_post_bias=False),
                                use_tanh_at_final=False)
    cases += [(lambda: bigvgan.build_generator(cfg), False), (lambda: bigvgan.build_generator(cfg), True)]
    for build, parametrized in cases:
        normed = weight_normed(build(), parametrized=parametrized)
        state = normed.state_dict()
        assert any(k.endswith(("weight_g", "original0")) for k in state)
        fused = load_generator(build(), state, "test")
        assert not any("weight_g" in k or "original" in k for k in fused.state_dict())
        with torch.no_grad():
            assert (fused(mel) - normed(mel)).abs().max() < 1e-6


def upstream_v1_state(conv: str = "") -> dict[str, torch.Tensor]:
    """The generator of jik876's UNIVERSAL_V1 as its checkpoint holds it: key names and shapes written out
    from upstream models.py + config_v1.json (weight-norm pairs, dim 0), random values. `conv=".conv"` gives
    SpeechBrain's layout of the same network."""
    state = {}

    def weight_normed_conv(name, c_out, c_in, kernel, transposed=False):
        v_shape = (c_in, c_out, kernel) if transposed else (c_out, c_in, kernel)
        state[f"{name}{conv}.weight_g"] = torch.rand(v_shape[0], 1, 1) + 0.5
        state[f"{name}{conv}.weight_v"] = torch.randn(v_shape) * 0.02
        state[f"{name}{conv}.bias"] = torch.zeros(c_out)

    weight_normed_conv("conv_pre", 512, 80, 7)
    channels = 512
    for i, kernel in enumerate([16, 16, 4, 4]):
        weight_normed_conv(f"ups.{i}", channels // 2, channels, kernel, transposed=True)
        channels //= 2
        for j, k in enumerate([3, 7, 11]):
            for m in range(3):
                weight_normed_conv(f"resblocks.{3 * i + j}.convs1.{m}", channels, channels, k)
                weight_normed_conv(f"resblocks.{3 * i + j}.convs2.{m}", channels, channels, k)
    weight_normed_conv("conv_post", 1, 32, 7)
    return state


V1_CONFIG = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
             "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
             "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], **OUR_MEL}


def test_upstream_v1_key_layout_loads_strictly_and_bad_keys_are_named(tmp_path):
    state = upstream_v1_state()
    assert len(state) == 234
    folder = tmp_path / "UNIVERSAL_V1"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(V1_CONFIG))
    torch.save({"generator": state}, folder / "g_02500000")
    wav = load_vocoder(f"hifigan:{folder}", MelConfig())(a_mel(frames=4))
    assert wav.shape == (1, 4 * HOP) and torch.isfinite(wav).all()

    cfg = mrf_config_from_dict(V1_CONFIG)
    load_generator(hifigan.build_generator(cfg, speechbrain=True), upstream_v1_state(".conv"), "sb")
    extra = {**state, "resblocks.12.convs1.0.bias": torch.zeros(32)}
    with pytest.raises(VcAppError, match=r"unexpected keys resblocks\.12\.convs1\.0\.bias"):
        load_generator(hifigan.build_generator(cfg), extra, "v1")
    missing = {k: v for k, v in state.items() if k != "resblocks.5.convs2.1.bias"}
    with pytest.raises(VcAppError, match=r"missing keys resblocks\.5\.convs2\.1\.bias"):
        load_generator(hifigan.build_generator(cfg), missing, "v1")
    half_pair = {k: v for k, v in state.items() if k != "conv_post.weight_g"}
    with pytest.raises(VcAppError, match=r"missing key conv_post\.weight_g"):
        load_generator(hifigan.build_generator(cfg), half_pair, "v1")
    with pytest.raises(VcAppError, match=r"unexpected keys .*conv_pre\.conv\.bias"):  # SpeechBrain keys, jik876 net
        load_generator(hifigan.build_generator(cfg), upstream_v1_state(".conv"), "v1")


def test_bigvgan_keys_follow_the_upstream_layout():
    cfg = bigvgan.BigVGANConfig(mrf=mrf_config_from_dict(BIGVGAN_TINY, conv_post_bias=False))
    keys = set(weight_normed(bigvgan.build_generator(cfg)).state_dict())
    for key in ("ups.0.0.weight_g", "resblocks.0.activations.5.act.alpha", "resblocks.0.activations.5.act.beta",
                "resblocks.0.activations.0.upsample.filter", "resblocks.0.activations.0.downsample.lowpass.filter",
                "activation_post.act.beta", "conv_post.weight_v"):
        assert key in keys
    assert "conv_post.bias" not in keys
    taps = bigvgan.kaiser_sinc_filter(0.25, 0.3, 12).flatten()
    assert abs(float(taps.sum()) - 1) < 1e-6 and torch.allclose(taps, taps.flip(0))


# -- mel recipes -----------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    ({"fmax": None}, "fmax 11025 Hz where ours is 8000 Hz"),  # bigvgan_v2_22khz_80band_256x
    ({"sampling_rate": 24000}, "sample rate 24000 Hz where ours is 22050 Hz"),
    ({"num_mels": 100}, "mel bands 100 where ours is 80"),
])
def test_other_mel_recipes_are_refused_with_the_mismatch_named(tmp_path, change, message):
    folder = tmp_path / "other"
    write_bigvgan(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(VcAppError, match=message):
        load_vocoder(f"bigvgan:{folder}", MelConfig())


def test_speechbrain_centre_frames_warn_and_sixteen_khz_is_refused(tmp_path, caplog):
    write_speechbrain(tmp_path / "sb22", rate=22050)
    with caplog.at_level(logging.WARNING):
        load_vocoder(f"hifigan:{tmp_path / 'sb22'}", MelConfig())
    assert "center=True" in caplog.text and "128 samples" in caplog.text
    write_speechbrain(tmp_path / "sb16", rate=16000)
    with pytest.raises(VcAppError, match="sample rate 16000 Hz where ours is 22050 Hz"):
        load_vocoder(f"hifigan:{tmp_path / 'sb16'}", MelConfig())


def test_long_mels_are_vocoded_in_pieces_like_one_pass(tmp_path):
    write_speechbrain(tmp_path / "sb")
    write_bigvgan(tmp_path / "big")
    mel = a_mel(frames=70)
    for spec in (f"hifigan:{tmp_path / 'sb'}", f"bigvgan:{tmp_path / 'big'}"):
        vocoder = load_vocoder(spec, MelConfig())
        whole = vocoder(mel)
        pieces = NeuralVocoder(vocoder.generator, name=spec, mel=MelConfig(), pad_frames=vocoder.pad_frames,
                               delay=vocoder.delay, chunk_frames=16, context_frames=16)(mel)
        assert pieces.shape == whole.shape and (pieces - whole).abs().max() < 1e-5


# -- bad files and specs -------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unsafe_or_malformed_checkpoints_get_one_sentence(tmp_path):
    folder = tmp_path / "evil"
    write_jik876(folder)
    marker = tmp_path / "pwned"
    with open(folder / "g_00001000", "wb") as handle:
        pickle.dump({"generator": _Exploit(str(marker))}, handle)
    with pytest.raises(VcAppError, match="weights_only=True"):
        load_vocoder(f"hifigan:{folder}", MelConfig())
    assert not marker.exists()
    write_jik876(folder)
    config = json.loads((folder / "config.json").read_text())
    del config["upsample_rates"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VcAppError, match="lacks the field 'upsample_rates'"):
        load_vocoder(f"hifigan:{folder}", MelConfig())
    with pytest.raises(VcAppError, match="holds no bigvgan vocoder"):
        load_vocoder(f"bigvgan:{folder}", MelConfig())
    with pytest.raises(VcAppError, match="neither an existing folder nor a hub repo id"):
        load_vocoder("hifigan:not/a/hub/id", MelConfig())
    with pytest.raises(VcAppError, match="Unknown vocoder"):
        load_vocoder("wavenet", MelConfig())


def test_offline_uncached_hub_id_names_what_to_download(offline_cache):
    with pytest.raises(VcAppError, match=r"'vc-app download --vocoder bigvgan:v2-22khz'"):
        load_vocoder("bigvgan:v2-22khz", MelConfig())
    with pytest.raises(VcAppError, match=r"not in the local cache.*vc-app download --vocoder hifigan:someone/x@v2"):
        load_vocoder("hifigan:someone/x@v2", MelConfig())


def test_hub_vocoders_are_named_by_what_they_are_and_old_spellings_still_work(tmp_path, offline_cache, caplog):
    """`hifigan` was SpeechBrain's LibriTTS HiFi-GAN (a hub download) while the default is `hifigan:universal`:
    the hub vocoders have names that say what they are, and the bare old spellings still load them, with one
    notice each per process."""
    from vc_app import vocoders

    write_speechbrain(tmp_path / "sb")
    to_hub_cache(offline_cache, SB_REPO, tmp_path / "sb")
    write_bigvgan(tmp_path / "big")
    to_hub_cache(offline_cache, BIGVGAN_REPO, tmp_path / "big")
    mel = a_mel(frames=4)
    vocoders._renamed_notice.cache_clear()

    def notices() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "vc_app.vocoders"]

    with caplog.at_level(logging.WARNING, logger="vc_app.vocoders"):
        for new, old in (("hifigan:speechbrain-libritts", "hifigan"), ("bigvgan:v2-22khz", "BigVGAN")):
            named = load_vocoder(new, MelConfig())
            assert named.name == new and not notices()
            for _ in range(2):
                assert torch.equal(load_vocoder(old, MelConfig())(mel), named(mel))
            said = notices()
            assert len(said) == 1 and f"is now written '{new}'" in said[0] and "hifigan:universal" in said[0]
            caplog.clear()
    assert vocoders.parse_spec("hifigan") == ("hifigan", "speechbrain-libritts")


def test_vocoder_choices_follow_the_cache(tmp_path, offline_cache):
    choices = {spec: (ok, why) for spec, ok, why in vocoder_choices()}
    assert choices["griffinlim"] == (True, "")
    sb = choices["hifigan:speechbrain-libritts"]
    assert sb[0] is False and "vc-app download --vocoder hifigan:speechbrain-libritts" in sb[1]
    assert choices["bigvgan:v2-22khz"][0] is False
    write_bigvgan(tmp_path / "big")
    to_hub_cache(offline_cache, BIGVGAN_REPO, tmp_path / "big")
    folder_spec = f"hifigan:{tmp_path / 'big'}"
    choices = {spec: (ok, why) for spec, ok, why in vocoder_choices(["bigvgan:v2-22khz", folder_spec])}
    assert choices["bigvgan:v2-22khz"] == (True, "")
    assert choices[folder_spec][0] is False and "hyperparams.yaml" in choices[folder_spec][1]


def test_convert_uses_a_hub_vocoder(tmp_path, tiny_bundle, speech_clips, offline_cache):
    from vc_app.converter import VoiceConverter

    write_bigvgan(tmp_path / "big")
    to_hub_cache(offline_cache, BIGVGAN_REPO, tmp_path / "big")
    converter = VoiceConverter.from_specs(str(tiny_bundle), "bigvgan:v2-22khz", device="cpu")
    out = converter.convert(speech_clips["source"], converter.voice([speech_clips["target"]]))
    assert out.numel() == sf.info(str(speech_clips["source"])).frames and torch.isfinite(out).all()


# -- CLI -----------------------------------------------------------------------------------------------
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny generators (see `one_thread`)


@pytest.mark.slow
def test_vocode_cli_resynthesises_a_clip_and_vocodes_a_saved_mel(tmp_path):
    write_speechbrain(tmp_path / "sb-22050Hz")
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), synthetic_speech(1.3, 22050), 22050)
    out = tmp_path / "resynth.wav"
    done = run_cli("vocode", "--input", str(clip), "--vocoder", f"hifigan:{tmp_path / 'sb-22050Hz'}",
                   "--output", str(out), "--device", "cpu", env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert sf.info(str(out)).frames == sf.info(str(clip)).frames
    np.save(tmp_path / "mel.npy", a_mel(frames=31)[0].numpy())
    done = run_cli("vocode", "--input", str(tmp_path / "mel.npy"), "--vocoder", "griffinlim:2",
                   "--output", str(tmp_path / "mel.wav"), env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert sf.info(str(tmp_path / "mel.wav")).frames == 31 * HOP
    np.save(tmp_path / "wrong.npy", np.zeros((31, 80), np.float32))
    bad = run_cli("vocode", "--input", str(tmp_path / "wrong.npy"), "--output", str(tmp_path / "w.wav"), env=ONE_THREAD)
    assert bad.returncode != 0 and "transpose" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_download_and_offline_cli(tmp_path):
    cache = tmp_path / "hub"
    write_bigvgan(tmp_path / "big")
    to_hub_cache(cache, BIGVGAN_REPO, tmp_path / "big")
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **ONE_THREAD}
    ready = run_cli("download", "--vocoder", "bigvgan", "--vocoder", "griffinlim", env=env)
    assert ready.returncode == 0, ready.stderr
    assert "bigvgan: ready offline" in ready.stdout and "griffinlim: nothing to download" in ready.stdout
    np.save(tmp_path / "mel.npy", a_mel(frames=9)[0].numpy())
    done = run_cli("vocode", "--input", str(tmp_path / "mel.npy"), "--vocoder", "bigvgan",
                   "--output", str(tmp_path / "out.wav"), env=env)
    assert done.returncode == 0, done.stderr
    assert sf.info(str(tmp_path / "out.wav")).frames == 9 * HOP
    missing = run_cli("download", "--vocoder", "hifigan", env=env)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    notice, error = missing.stderr.strip().splitlines()  # the old spelling's one-line notice, then one sentence
    assert "is now written 'hifigan:speechbrain-libritts'" in notice
    assert "vc-app download --vocoder hifigan:speechbrain-libritts" in error  # the name it has now


def test_unreachable_hub_falls_back_to_the_cache(tmp_path, offline_cache, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as constants

    from vc_app.hub import hub_files

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", unreachable)
    write_speechbrain(tmp_path / "sb")
    to_hub_cache(offline_cache, SB_REPO, tmp_path / "sb")
    assert hub_files(SB_REPO) == ["generator.ckpt", "hyperparams.yaml"]
    with pytest.raises(VcAppError, match="not in the local cache and the hub cannot be reached"):
        hub_files("someone/elsewhere", hint="vc-app download --vocoder hifigan:someone/elsewhere")
