"""Real-time factor of each vocoder family on CPU, against Griffin-Lim measured in the same run.

    python bench/vocoder_speed.py [--seconds 4] [--threads 2] [--repeats 3] [--only hifigan-v1,bigvgan-v2]
                                  [--vocoder SPEC ...]

Generators are randomly initialised at the published sizes (HiFi-GAN V1 and V3 of jik876's configs,
BigVGAN base and v2 22 kHz 80-band) and at three sizes of our ConvNeXt + inverse-STFT generator (the `fast`
vocoder; "convnext-large" is Vocos's published size), each of those under ONNX Runtime as the app runs it and
in PyTorch: speed does not depend on the weights, so nothing is downloaded. --vocoder adds vocoders as the app
loads them (default: hifigan:universal, the default vocoder, under ONNX Runtime).
RTF = seconds of compute per second of audio (lower is faster); "x real time" = 1 / RTF; "x griffinlim"
= this vocoder's compute time over Griffin-Lim(32)'s on the same mel; GFLOP/s audio = floating-point
operations per second of audio counted by `torch.utils.flop_counter` (convolutions and matrix products; the
inverse FFT's few MFLOP are not counted). Each time is the fastest of `--repeats` runs taken in turns, so
background load skews the ratios as little as possible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_SHAPE_V1 = {"upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
             "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]}
SHAPES = {
    "hifigan-v1": ("hifigan", {"resblock": "1", "upsample_initial_channel": 512, **_SHAPE_V1}),
    "hifigan-v3": ("hifigan", {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
                               "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
                               "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]}),
    "bigvgan-base": ("bigvgan", {"resblock": "1", "upsample_initial_channel": 512, **_SHAPE_V1,
                                 "activation": "snakebeta", "snake_logscale": True}),
    "bigvgan-v2": ("bigvgan", {"resblock": "1", "upsample_rates": [4, 4, 2, 2, 2, 2],
                               "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4], "upsample_initial_channel": 1536,
                               "resblock_kernel_sizes": [3, 7, 11],
                               "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                               "activation": "snakebeta", "snake_logscale": True, "use_tanh_at_final": False,
                               "use_bias_at_final": False}),
    "convnext-small": ("convnext", {"dim": 256, "intermediate_dim": 768, "layers": 6}),
    "convnext-base": ("convnext", {"dim": 384, "intermediate_dim": 1152, "layers": 8}),
    "convnext-large": ("convnext", {"dim": 512, "intermediate_dim": 1536, "layers": 8}),  # Vocos's size
}


def build(name: str, mel_cfg) -> dict:
    """{label: vocoder} of random weights in the shape `name`, behind the same wrapper the app uses (the
    ConvNeXt shapes twice: as `fast:FOLDER` loads them, under ONNX Runtime, and in PyTorch)."""
    from vc_app.vocoders import bigvgan, hifigan
    from vc_app.vocoders.generator import mrf_config_from_dict
    from vc_app.vocoders.neural import NeuralVocoder

    family, d = SHAPES[name]
    if family == "convnext":
        import tempfile

        from vc_app.vocoders import fast
        from vc_app.vocoders.convnext_istft import ConvNeXtISTFTConfig, ConvNeXtISTFTGenerator

        folder = fast.save_fast_vocoder(ConvNeXtISTFTGenerator(ConvNeXtISTFTConfig(**d)), mel_cfg,
                                        Path(tempfile.mkdtemp()) / name)
        onnx = fast.load(folder, mel_cfg, name=name)
        torch_only = fast.load(folder, mel_cfg, name=name, onnx=False)
        return {f"{name} ({onnx.backend})": onnx, f"{name} (pytorch)": torch_only}
    if family == "hifigan":
        generator = hifigan.build_generator(mrf_config_from_dict(d))
    else:
        cfg = bigvgan.BigVGANConfig(mrf_config_from_dict(d, conv_post_bias=d.get("use_bias_at_final", True)),
                                    activation=d["activation"], snake_logscale=d["snake_logscale"],
                                    use_tanh_at_final=d.get("use_tanh_at_final", True))
        generator = bigvgan.build_generator(cfg)
    return {name: NeuralVocoder(generator.eval().requires_grad_(False), name=name, mel=mel_cfg)}


def gflop(vocoder, mel: torch.Tensor) -> float | None:
    """GFLOP of `vocoder`'s generator on mel (1, n_mels, T), counted by torch.utils.flop_counter (None: no
    generator, e.g. Griffin-Lim)."""
    from torch.utils.flop_counter import FlopCounterMode

    generator = getattr(vocoder, "generator", None)
    if generator is None:
        return None
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        generator(mel)
    return counter.get_total_flops() / 1e9


def fastest_times(fns: dict, repeats: int) -> dict[str, float]:
    """Seconds per call of each function: the fastest of `repeats` calls, taken in turns (round robin) after
    a warm-up, so that load from other processes hits every vocoder alike and the minimum discards it."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SHAPES), help="comma-separated subset of " + ", ".join(SHAPES))
    parser.add_argument("--vocoder", action="append", metavar="SPEC",
                        help="vocoders loaded as the app loads them (repeatable; default: hifigan:universal)")
    return parser


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)

    from vc_app.config import MelConfig
    from vc_app.mel import mel_spectrogram
    from vc_app.vocoders import load_vocoder

    mel_cfg = MelConfig()
    sr = mel_cfg.sample_rate
    t = torch.arange(int(args.seconds * sr)) / sr
    wav = (0.3 * torch.sin(2 * torch.pi * 150 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))).float()
    mel = mel_spectrogram(wav + 0.01 * torch.randn_like(wav), mel_cfg).unsqueeze(0)
    audio_seconds = mel.shape[-1] * mel_cfg.hop_length / sr

    vocoders = {"griffinlim(32)": load_vocoder("griffinlim:32", mel_cfg)}
    for spec in args.vocoder or ["hifigan:universal"]:
        vocoder = load_vocoder(spec, mel_cfg)
        vocoders[f"{vocoder.name} ({getattr(vocoder, 'backend', '')})"] = vocoder
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        vocoders.update(build(name, mel_cfg))
    seconds = fastest_times({name: (lambda v=v: v(mel)) for name, v in vocoders.items()}, args.repeats)
    baseline = seconds["griffinlim(32)"]
    print(f"audio: {audio_seconds:.2f} s, threads: {torch.get_num_threads()}, fastest of {args.repeats} runs")
    print(f"{'vocoder':34s} {'params':>8s} {'GFLOP/s audio':>14s} {'RTF':>8s} {'x real time':>12s} "
          f"{'x griffinlim':>13s}")
    for name, vocoder in vocoders.items():
        generator = getattr(vocoder, "generator", None)
        params = f"{sum(p.numel() for p in generator.parameters()) / 1e6:7.1f}M" if generator is not None else "-"
        work = gflop(vocoder, mel)
        flops = f"{work / audio_seconds:14.2f}" if work is not None else f"{'-':>14s}"
        print(f"{name:34s} {params:>8s} {flops} {seconds[name] / audio_seconds:8.4f} "
              f"{audio_seconds / seconds[name]:11.2f}x {seconds[name] / baseline:12.2f}x")


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
