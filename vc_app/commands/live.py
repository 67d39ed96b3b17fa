"""`vc-app live`: speak into the microphone and hear yourself in the target's voice (vc_app.streaming).

With --input FILE --output FILE it simulates a microphone instead: the file is played into the same engine
in real time (or as fast as possible with --no-wait), and the output file holds what a listener would hear,
latency included: its sample n is what leaves the speaker at time n.
"""

from __future__ import annotations

import argparse
import sys
import time

from vc_app.commands.options import add_model_options, add_target_options, add_threads_option
from vc_app.errors import VcAppError

MIN_BLOCK_MS, MAX_BLOCK_MS = 10.0, 1000.0
STATUS_SECONDS = 0.5  # how often the live status line is refreshed


def add_parser(sub) -> None:
    from vc_app.config import MelConfig, StreamConfig

    mel = MelConfig()
    block_ms = StreamConfig().block_frames * mel.hop_length / mel.sample_rate * 1000
    p = sub.add_parser("live", help="microphone to speakers in the target's voice (or a file, simulated)",
                       description=__doc__)
    add_target_options(p, required=False)
    p.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    p.add_argument("--input-device", metavar="ID_OR_NAME", help="microphone (default: the system's)")
    p.add_argument("--output-device", metavar="ID_OR_NAME", help="speakers (default: the system's)")
    p.add_argument("--block-ms", type=float, default=round(block_ms, 1), metavar="MS",
                   help=f"audio converted per block, rounded to whole frames (default: {block_ms:.1f}); "
                        f"smaller lowers the latency and raises the load")
    p.add_argument("--input", metavar="FILE", help="simulate the microphone with this file (needs --output)")
    p.add_argument("--output", metavar="FILE", help="write what the speaker would play (with --input)")
    p.add_argument("--no-wait", action="store_true", help="with --input: as fast as possible, not in real time")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    add_threads_option(p)
    add_model_options(p)
    p.set_defaults(run=run)


def check_live_args(args: argparse.Namespace) -> None:
    """Refuse options that do not go together, torch-free, before anything loads."""
    if not args.target and not args.mix:
        raise VcAppError("vc-app live needs the voice to speak in: --target CLIPS_OR_VOICE (or --mix).")
    if (args.input is None) != (args.output is None):
        raise VcAppError("Simulation needs both --input FILE and --output FILE.")
    if args.no_wait and args.input is None:
        raise VcAppError("--no-wait only applies to a simulation (--input FILE --output FILE).")
    if not MIN_BLOCK_MS <= args.block_ms <= MAX_BLOCK_MS:
        raise VcAppError(f"--block-ms must be between {MIN_BLOCK_MS:g} and {MAX_BLOCK_MS:g}.")


def run(args: argparse.Namespace) -> int:
    from vc_app.commands.options import apply_threads, check_threads, parse_mix_options, target_files

    if args.list_devices:
        devices = sound_devices().query_devices()
        print(devices if len(devices) else "No sound devices found (PortAudio lists none).")
        return 0
    check_live_args(args)
    parts = parse_mix_options(args)
    args.threads = check_threads(args.threads)
    from vc_app.targets import check_target_file

    for path in target_files(args, parts):
        check_target_file(path)
    if args.input is not None:
        from vc_app.audio import check_audio_file
        from vc_app.paths import check_output_path

        check_output_path(args.output, inputs=[args.input, *target_files(args, parts)], overwrite=args.overwrite,
                          try_write=True)
        check_audio_file(args.input, "input")
    else:
        sd = sound_devices()
        devices = check_devices(sd, args.input_device, args.output_device)
    apply_threads(args.threads)
    stream = build_stream(args, parts)
    if args.input is not None:
        return simulate_file(args, stream)
    return run_devices(sd, devices, stream)


def build_stream(args: argparse.Namespace, parts: list):
    """The streaming converter of the options: the voice computed once, the vocoder named or picked."""
    from vc_app.config import StreamConfig
    from vc_app.converter import VoiceConverter
    from vc_app.streaming import block_frames_for
    from vc_app.targets import load_mix, load_target

    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder or None, device=args.device)
    voice = load_mix(parts, converter.voice) if parts else load_target(args.target, converter.voice)
    config = StreamConfig(block_frames=block_frames_for(args.block_ms, converter.mel_cfg))
    if args.vocoder:
        return converter.stream(voice, config)
    return pick_vocoder(converter, voice, config)


def pick_vocoder(converter, voice, config):
    """The stream with the best vocoder of `LIVE_VOCODERS` that keeps up here (measured), saying which."""
    from vc_app.converter import VoiceConverter
    from vc_app.streaming import describe_pick, pick_live_stream
    from vc_app.vocoders import load_vocoder

    def make_stream(spec: str):
        if converter.vocoder.name == spec:
            return converter.stream(voice, config)
        try:
            vocoder = load_vocoder(spec, converter.mel_cfg, device=str(converter.device))
        except VcAppError:
            return None
        return VoiceConverter(converter.bundle, vocoder, device=converter.device).stream(voice, config)

    spec, share, stream, tried = pick_live_stream(make_stream)
    print(f"live: {describe_pick(spec, share, tried, stream.block_samples / stream.sample_rate)}")
    return stream


def simulate_file(args: argparse.Namespace, stream) -> int:
    """--input/--output: the file through the engine; writes what the speaker would play."""
    from vc_app.audio import AudioStream, check_sound, clips, sound_bounds, write_audio
    from vc_app.streaming import LiveEngine, simulate

    source = AudioStream(args.input, stream.sample_rate).load()
    peak = float(source.abs().max())
    start, end = sound_bounds(source.numpy(), stream.sample_rate)
    check_sound(peak, (end - start) / stream.sample_rate, f"input {args.input}")
    if clips(source.numpy()):
        print(f"vc-app: notice: {args.input} clips (its peaks are flattened at full scale), so the conversion "
              f"will sound distorted.", file=sys.stderr)
    engine = LiveEngine(stream, threaded=not args.no_wait)
    try:
        out = simulate(engine, source, realtime=not args.no_wait)
    finally:
        engine.close()
    written = write_audio(args.output, out, stream.sample_rate, overwrite=args.overwrite)
    print(f"wrote {written}")
    print(summary(engine))
    return 0


def summary(engine, device_latency: float = 0.0) -> str:
    """One line: latency (with the device's buffers), load per block and dropped blocks."""
    mean, peak = engine.stats.load(engine.block_seconds)
    latency = (engine.latency + device_latency) * 1000
    device = f" (device buffers {device_latency * 1000:.0f} ms)" if device_latency else ""
    return (f"latency {latency:.0f} ms{device}, compute {mean:.0%} of a block (max {peak:.0%}), "
            f"{engine.stats.blocks} blocks, {engine.stats.dropped} dropped")


def sound_devices():
    """The sounddevice module, or one sentence on why PortAudio cannot be used."""
    try:
        import sounddevice
    except ImportError:
        raise VcAppError("vc-app live needs the sounddevice package: pip install 'vc-app[live]' "
                         "(or simulate with --input FILE --output FILE).") from None
    except OSError:
        raise VcAppError("vc-app live needs the PortAudio library: on Debian or Ubuntu, apt-get install "
                         "libportaudio2 (or simulate with --input FILE --output FILE).") from None
    return sounddevice


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.strip().isdigit() else value


def check_devices(sd, input_device: str | None, output_device: str | None) -> tuple:
    """(input, output) devices that exist and take mono float32 at the model's rate, or one sentence."""
    from vc_app.config import MelConfig

    rate = MelConfig().sample_rate
    devices = (_device(input_device), _device(output_device))
    for kind, device, check in (("input", devices[0], sd.check_input_settings),
                                ("output", devices[1], sd.check_output_settings)):
        what = "microphone" if kind == "input" else "speaker"
        try:
            sd.query_devices(device, kind)
        except (ValueError, sd.PortAudioError):
            named = f" named {device!r}" if device is not None else ""
            raise VcAppError(f"No {what}{named} found; see vc-app live --list-devices, or simulate one with "
                             f"--input FILE --output FILE.") from None
        try:
            check(device, channels=1, dtype="float32", samplerate=rate)
        except (ValueError, sd.PortAudioError) as err:
            raise VcAppError(f"The {what} cannot work at {rate} Hz mono ({err}); pick another with "
                             f"--{kind}-device (see --list-devices).") from None
    return devices


def run_devices(sd, devices: tuple, stream) -> int:
    """Microphone to speakers until Ctrl-C, with a status line; a device that stops is one sentence."""
    import numpy as np
    import torch

    from vc_app.audio import SILENT_PEAK, clips
    from vc_app.streaming import LiveEngine

    engine = LiveEngine(stream)
    level = {"peak": 0.0, "clipped": False}

    def callback(indata, outdata, frames, time_info, status) -> None:
        level["peak"] = max(level["peak"], float(np.abs(indata).max()))
        level["clipped"] = level["clipped"] or clips(indata[:, 0])
        engine.feed(torch.from_numpy(indata[:, 0].copy()))
        outdata[:, 0] = engine.read(frames).numpy()

    try:
        audio = sd.Stream(samplerate=stream.sample_rate, blocksize=engine.quantum, device=devices, channels=1,
                          dtype="float32", latency="low", callback=callback)
    except (ValueError, sd.PortAudioError) as err:
        engine.close()
        raise VcAppError(f"The sound device cannot be opened (busy, or unplugged?): {err}.") from None
    try:
        with audio:
            device_latency = float(sum(audio.latency))
            print(f"live: {summary(engine, device_latency).split(',')[0]}; speak now, Ctrl-C stops.")
            while audio.active:
                time.sleep(STATUS_SECONDS)
                (peak, clipped), level["peak"], level["clipped"] = (level["peak"], level["clipped"]), 0.0, False
                note = ("  input silent: is the microphone muted?" if peak < SILENT_PEAK else
                        "  input clipping: lower the microphone's gain" if clipped else "")
                print(f"\r{summary(engine, device_latency)}{note}".ljust(100), end="", flush=True)
            raise VcAppError("The sound device stopped (was it unplugged?).")
    except KeyboardInterrupt:
        print(f"\nstopped: {summary(engine)}")
        return 0
    except sd.PortAudioError as err:
        raise VcAppError(f"The sound device failed ({err}).") from None
    finally:
        engine.close()
