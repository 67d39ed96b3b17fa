"""`vc-app batch`: convert every clip of a folder (or the rows of a manifest); resumable and shardable.

    vc-app batch INPUT_DIR --target voice.wav [--target more.wav] --output OUT_DIR
    vc-app batch INPUT_DIR --target alice.voice --output OUT_DIR        # a saved voice (vc-app voice)
    vc-app batch INPUT_DIR --mix alice.voice:0.7 --mix bob.voice:0.3 --output OUT_DIR    # a blend
    vc-app batch --manifest pairs.csv --output OUT_DIR      # columns source,target[,output]
"""

from __future__ import annotations

import argparse
import functools
import os

from vc_app.commands.options import (
    add_model_options,
    add_target_options,
    add_threads_option,
    apply_threads,
    check_threads,
    parse_mix_options,
    target_files,
)


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="convert a folder or a manifest of clips", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="INPUT_DIR", help="folder of source clips (searched recursively)")
    p.add_argument("--manifest", metavar="CSV", help="pairs to convert: columns source,target[,output]; "
                   "several target clips of one speaker separated by ';', or one .voice file")
    add_target_options(p, required=False)  # folder mode: --target clips or one .voice file, or --mix
    p.add_argument("--output", required=True, metavar="OUT_DIR", help="where outputs go (mirrors INPUT_DIR)")
    p.add_argument("--glob", metavar="PATTERN", help="only inputs whose path relative to INPUT_DIR matches, "
                   "e.g. '*.flac' or 'speaker1/*'")
    p.add_argument("--format", choices=("wav", "flac", "ogg"), default="wav",
                   help="output format: wav or flac (16-bit), ogg (Vorbis) (default wav)")
    p.add_argument("--keep-rate", action="store_true", help="write each output at its source's sample rate "
                   "(default: 22050 Hz)")
    p.add_argument("--overwrite", action="store_true", help="convert again even when the output exists")
    p.add_argument("--shard", metavar="I/N", help="process only the I-th of N deterministic parts (0-based)")
    p.add_argument("--workers", type=int, default=min(4, max(0, ((os.cpu_count() or 2) - 2) // 2)),
                   help="processes that decode clips while the model runs (0: decode in the main process; "
                        "default: (cores - 2) / 2, at most 4, so 0 on a 2-core laptop where the model needs "
                        "both cores)")
    p.add_argument("--batch-size", type=int, default=1, help="clips per model call (useful on a GPU; default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the summary")
    add_threads_option(p)
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from vc_app.batch import failures_name, parse_shard, plan_folder, plan_manifest, run_batch, shard
    from vc_app.errors import VcAppError
    from vc_app.targets import check_target_file, is_voice_path, load_mix, load_target

    if (args.input is None) == (args.manifest is None):
        raise VcAppError("Give either INPUT_DIR (with --target) or --manifest, not both or neither.")
    if args.batch_size < 1 or args.workers < 0:
        raise VcAppError("--batch-size must be at least 1 and --workers at least 0.")
    args.threads = check_threads(args.threads)
    mix = parse_mix_options(args)
    if args.manifest:
        if args.target or mix:
            raise VcAppError("--target and --mix are for folder mode; a manifest names its targets in its target "
                             "column.")
        jobs = plan_manifest(args.manifest, args.output, fmt=args.format)
    else:
        jobs = plan_folder(args.input, target_files(args, mix), args.output, glob=args.glob, fmt=args.format,
                           warn=lambda message: print(f"vc-app: warning: {message}", file=sys.stderr))
        for target in target_files(args, mix):
            check_target_file(target)  # fail fast on a bad target, before PyTorch and the model load
    part = parse_shard(args.shard) if args.shard else None
    if part:
        jobs = shard(jobs, *part)

    @functools.cache
    def load_converter():  # called by run_batch only when something is left to convert
        from vc_app.converter import VoiceConverter

        apply_threads(args.threads)
        return VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)

    voice = None  # clips: each job's voice is made when first needed
    if mix or (args.target and any(is_voice_path(t) for t in args.target)):
        converter = load_converter()  # a blend needs the model, and a voice of another model is refused now
        voice = load_mix(mix, converter.voice) if mix else load_target(args.target, converter.voice)
        converter.check_voice(voice)
    result = run_batch(load_converter, jobs, args.output, voice=voice, overwrite=args.overwrite,
                       keep_rate=args.keep_rate, workers=args.workers, batch_size=args.batch_size,
                       progress=not args.quiet, failures_file=failures_name(part))
    print(result.summary())
    if result.failed:
        print(f"failures are listed in {os.path.join(args.output, failures_name(part))}")
        return 1
    return 0
