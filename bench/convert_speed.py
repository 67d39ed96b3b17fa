"""Real-time factor of conversion on CPU: the acoustic model, and the full pipeline with each vocoder, side by side.

    python bench/convert_speed.py [--checkpoint DIR] [--seconds 10] [--threads 2] [--repeats 3]
                                  [--vocoder SPEC ...] [--official DIR]

RTF here = seconds of compute per second of audio (lower is faster); "x real time" = 1 / RTF.
Pipelines (default): Griffin-Lim (32 it.), HiFi-GAN universal (the default vocoder) and `fast` (our ConvNeXt +
inverse-STFT generator; while checkpoints/vocoder-fast/ does not exist, random weights of its default size,
said so in the printout: speed does not depend on the weights). Rounds are
interleaved (acoustic, each pipeline, again...) so that other work on the machine slows all of them
alike; medians are printed, and the ratio of each pipeline's time to the Griffin-Lim one.
Targets (2 CPU threads, 10 s of speech): acoustic model >= 100x real time, full pipeline with Griffin-Lim
>= 15x, with HiFi-GAN universal >= 2x, with fast >= 10x and >= 5x as fast as with HiFi-GAN universal (issue
29). Uses the shipped checkpoint when present, else a randomly
initialised model of the default size (speed does not depend on the weights). Each part is a function
(Setup -> {name: callable}) in `parts` of `main`, so another comparison is one more function there.
A large float32 matmul is timed in the same rounds: the roofline. For each neural vocoder the bench
prints its GFLOP per second of audio (convolutions and matrix products, counted by torch.utils.flop_counter),
the rate it reaches, and what share of the matmul rate 2x real time would need (HiFi-GAN is convolution-bound,
so that share says whether 2x is in reach).
--official DIR (a checkout of github.com/jjery2243542/adaptive_voice_conversion, never vendored here)
also times the official model's conversion of the same mel (its content encoder and decoder, speaker
vector given, as ours) alternately with ours, and prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MATMUL = "float32 matmul 2048^2"  # the roofline's entries are named "<MATMUL> (<runtime>)"
TARGETS = {"acoustic model": 100.0, "full pipeline (griffinlim:32)": 15.0, "full pipeline (hifigan:universal)": 2.0,
           "full pipeline (fast)": 10.0}
FAST_OVER_DEFAULT = 5.0  # the fast vocoder's pipeline: at least this many times as fast as with hifigan:universal


@dataclass
class Setup:
    """What every part times: the bundle, 10 s of speech-like audio, its mel and a speaker vector."""

    bundle: object
    checkpoint: str
    wav: torch.Tensor  # (N,) at the model's rate
    mel: torch.Tensor  # (1, n_mels, T)
    speaker: torch.Tensor  # (c_speaker,)
    seconds: float
    flops: dict[str, float] = field(default_factory=dict)  # timed name -> floating-point operations per call


def make_setup(checkpoint: str | None, seconds: float) -> Setup:
    from vc_app.bundle import default_checkpoint, load_bundle, save_bundle
    from vc_app.config import MelConfig, ModelConfig
    from vc_app.mel import mel_spectrogram
    from vc_app.models import AdaINVC

    spec = checkpoint or default_checkpoint()
    if not Path(spec).exists() and checkpoint is None:
        spec = str(save_bundle(AdaINVC(ModelConfig()), MelConfig(), Path(tempfile.mkdtemp()) / "random"))
        print("(no shipped checkpoint: timing a randomly initialised default-size model)")
    bundle = load_bundle(spec)
    sr = bundle.mel.sample_rate
    t = torch.arange(int(seconds * sr)) / sr
    wav = (0.3 * torch.sin(2 * torch.pi * 150 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))).float()
    wav += 0.01 * torch.randn_like(wav)
    mel = mel_spectrogram(wav, bundle.mel).unsqueeze(0)
    with torch.inference_mode():
        speaker = bundle.model.speaker_from_clips([mel[0, :, : 5 * sr // bundle.mel.hop_length]])
    return Setup(bundle, spec, wav, mel, speaker, seconds)


def acoustic_part(setup: Setup) -> dict[str, Callable[[], object]]:
    """The acoustic model alone: mel -> content -> AdaIN decoder -> mel."""
    model, mel, speaker = setup.bundle.model, setup.mel, setup.speaker.unsqueeze(0)

    def run():
        with torch.inference_mode():
            return model.convert(mel, speaker)

    return {"acoustic model": run}


def pipeline_part(spec: str) -> Callable[[Setup], dict[str, Callable[[], object]]]:
    """The vocoder `spec` alone on the source mel, and the full pipeline (`VoiceConverter.convert`) with it."""

    def part(setup: Setup) -> dict[str, Callable[[], object]]:
        from vc_app.converter import VoiceConverter
        from vc_app.vocoders import load_vocoder

        vocoder = load_fast_or_random(setup) if spec == "fast" else load_vocoder(spec, setup.bundle.mel)
        converter = VoiceConverter(setup.bundle, vocoder)
        backend = getattr(vocoder, "backend", "")
        print(f"{vocoder.name}: {backend or 'no weights'}")
        if hasattr(vocoder, "generator"):
            setup.flops[f"{vocoder.name} alone"] = generator_flops(vocoder.generator, setup.mel)

        def vocode():
            with torch.inference_mode():
                return vocoder(setup.mel)

        voice = converter.voice(setup.wav[: 5 * setup.bundle.mel.sample_rate])  # the target: 5 s of the clip
        return {f"{vocoder.name} alone": vocode,
                f"full pipeline ({vocoder.name})": lambda: converter.convert(setup.wav, voice)}

    return part


def load_fast_or_random(setup: Setup):
    """The `fast` vocoder; while it is not trained, the same generator with random weights of its default size,
    loaded through the same path (`fast:FOLDER`, ONNX Runtime on CPU)."""
    from vc_app.vocoders import fast, load_vocoder
    from vc_app.vocoders.convnext_istft import ConvNeXtISTFTConfig, ConvNeXtISTFTGenerator

    if fast.availability("")[0]:
        return load_vocoder("fast", setup.bundle.mel)
    folder = fast.save_fast_vocoder(ConvNeXtISTFTGenerator(ConvNeXtISTFTConfig(n_mels=setup.bundle.mel.n_mels)),
                                    setup.bundle.mel, Path(tempfile.mkdtemp()) / "fast-random")
    print(f"(fast: not trained yet, {fast.default_folder()} does not exist: timing random weights of its default "
          f"size; speed does not depend on the weights)")
    return fast.load(folder, setup.bundle.mel, name="fast")


def generator_flops(generator: torch.nn.Module, mel: torch.Tensor) -> float:
    """Floating-point operations (2 per multiply-add) of `generator` on mel (1, n_mels, T): its convolutions and
    matrix products, counted by torch.utils.flop_counter (an inverse FFT's few MFLOP are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        generator(mel)
    return float(counter.get_total_flops())


def matmul_part(setup: Setup) -> dict[str, Callable[[], object]]:
    """A large float32 matrix product in PyTorch and in ONNX Runtime (when installed): the best of them is what
    this CPU's cores reach, the roofline for the vocoders' convolutions."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    calls: dict[str, Callable[[], object]] = {f"{MATMUL} (torch)": lambda: a @ b}
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        pass
    else:
        spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "abc"]
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {"a": a.numpy(), "b": b.numpy()}
        calls[f"{MATMUL} (onnxruntime)"] = lambda: session.run(None, feeds)
    setup.flops.update({name: 2.0 * n**3 for name in calls})
    return calls


def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds after one warm-up each."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(medians: dict[str, float], seconds: float, baseline: str | None) -> None:
    base = medians.get(baseline) if baseline else None
    default, fast = medians.get("full pipeline (hifigan:universal)"), medians.get("full pipeline (fast)")
    for name, spent in medians.items():
        if name.startswith(MATMUL):
            continue
        rtf = spent / seconds
        line = f"{name:36s} RTF {rtf:.4f} = {1 / rtf:7.2f}x real time"
        if base and name.startswith("full pipeline"):
            line += f"   {spent / base:5.2f}x the Griffin-Lim pipeline's time"
        if name in TARGETS:
            line += f"   target >= {TARGETS[name]:g}x: {'met' if 1 / rtf >= TARGETS[name] else 'NOT met'}"
        print(line)
    if default and fast:
        ratio = default / fast
        print(f"full pipeline with fast: {ratio:.2f}x as fast as with hifigan:universal   target >= "
              f"{FAST_OVER_DEFAULT:g}x: {'met' if ratio >= FAST_OVER_DEFAULT else 'NOT met'}")


def roofline(medians: dict[str, float], flops: dict[str, float], seconds: float) -> None:
    """Each neural vocoder's convolution rate against the best matmul rate timed in the same rounds."""
    peaks = {name: flops[name] / medians[name] for name in flops if name.startswith(MATMUL)}
    if not peaks:
        return
    for name, rate in peaks.items():
        print(f"{name:36s} {rate / 1e9:7.1f} GFLOP/s")
    peak = max(peaks.values())
    for name, work in flops.items():
        if name in peaks:
            continue
        rate = work / medians[name]
        need = 2.0 * work / seconds  # 2x real time
        print(f"{name:36s} {work / seconds / 1e9:6.2f} GFLOP per second of audio, runs at {rate / 1e9:6.1f} GFLOP/s "
              f"= {rate / peak:.0%} of the best matmul rate; 2x real time needs {need / 1e9:.1f} GFLOP/s "
              f"= {need / peak:.0%} of it")


def acoustic_vs_official(folder: str, model, mel: torch.Tensor, speaker: torch.Tensor, repeats: int) -> None:
    """Our acoustic model's conversion of mel (1, n_mels, T) to speaker (c_speaker,) beside the official
    AdaIN-VC's (random weights, same sizes), timed alternately; prints each and the ratio."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_speed import official_solver

    official = official_solver(Path(folder), mel.shape[1]).model.eval()
    with torch.inference_mode():
        emb = official.speaker_encoder(mel)
        fns = {"ours": lambda: model.convert(mel, speaker.unsqueeze(0)),
               "official": lambda: official.decoder(official.content_encoder(mel)[0], emb)}
        for fn in fns.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(max(3, repeats)):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    ours, theirs = statistics.median(times["ours"]), statistics.median(times["official"])
    print(f"acoustic model vs official AdaIN-VC on the same {mel.shape[-1]}-frame mel, alternating: ours "
          f"{ours * 1e3:.1f} ms, official {theirs * 1e3:.1f} ms -> ours {theirs / ours:.2f}x the official speed")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocoder", action="append", metavar="SPEC",
                        help="pipelines to time (repeatable; default: griffinlim:32, hifigan:universal and fast)")
    parser.add_argument("--official", metavar="DIR", help="checkout of jjery2243542/adaptive_voice_conversion")
    return parser


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)

    setup = make_setup(args.checkpoint, args.seconds)
    vocoders = args.vocoder or ["griffinlim:32", "hifigan:universal", "fast"]
    parts = [acoustic_part, matmul_part, *(pipeline_part(spec) for spec in vocoders)]
    calls: dict[str, Callable[[], object]] = {}
    for part in parts:
        calls.update(part(setup))
    print(f"audio: {args.seconds:.1f} s, threads: {torch.get_num_threads()}, checkpoint: {setup.checkpoint}, "
          f"{args.repeats} interleaved rounds (medians)")
    medians = time_interleaved(calls, args.repeats)
    report(medians, args.seconds, "full pipeline (griffinlim:32)")
    roofline(medians, setup.flops, args.seconds)
    if args.official:
        acoustic_vs_official(args.official, setup.bundle.model, setup.mel, setup.speaker, args.repeats)


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
