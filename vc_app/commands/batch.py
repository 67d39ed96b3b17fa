"""`vc-app batch`: convert every clip of a folder (or the rows of a manifest); resumable and shardable.

    vc-app batch INPUT_DIR --target voice.wav [--target more.wav] --output OUT_DIR
    vc-app batch --manifest pairs.csv --output OUT_DIR      # columns source,target[,output]
"""

from __future__ import annotations

import argparse
import os

from vc_app.commands.convert import add_model_options, add_threads_option


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="convert a folder or a manifest of clips", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="INPUT_DIR", help="folder of source clips (searched recursively)")
    p.add_argument("--manifest", metavar="CSV", help="pairs to convert: columns source,target[,output]; "
                   "several target clips of one speaker separated by ';'")
    p.add_argument("--target", action="append", default=[], metavar="FILE",
                   help="clip of the voice to use (folder mode); repeat for several clips of the same speaker")
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

    from vc_app.audio import check_audio_file
    from vc_app.batch import failures_name, parse_shard, plan_folder, plan_manifest, run_batch, shard
    from vc_app.commands.convert import apply_threads, check_threads
    from vc_app.errors import VcAppError

    if (args.input is None) == (args.manifest is None):
        raise VcAppError("Give either INPUT_DIR (with --target) or --manifest, not both or neither.")
    if args.batch_size < 1 or args.workers < 0:
        raise VcAppError("--batch-size must be at least 1 and --workers at least 0.")
    check_threads(args.threads)
    if args.manifest:
        if args.target:
            raise VcAppError("--target is for folder mode; a manifest names its targets in its target column.")
        jobs = plan_manifest(args.manifest, args.output, fmt=args.format)
    else:
        jobs = plan_folder(args.input, args.target, args.output, glob=args.glob, fmt=args.format,
                           warn=lambda message: print(f"vc-app: warning: {message}", file=sys.stderr))
        for target in args.target:
            check_audio_file(target, "target")  # fail fast on a bad target, before PyTorch and the model load
    part = parse_shard(args.shard) if args.shard else None
    if part:
        jobs = shard(jobs, *part)

    def load_converter():  # only when something is left to convert
        from vc_app.convert import VoiceConverter

        apply_threads(args.threads)
        return VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)

    result = run_batch(load_converter, jobs, args.output, overwrite=args.overwrite, keep_rate=args.keep_rate,
                       workers=args.workers, batch_size=args.batch_size, progress=not args.quiet,
                       failures_file=failures_name(part))
    print(result.summary())
    if result.failed:
        print(f"failures are listed in {os.path.join(args.output, failures_name(part))}")
        return 1
    return 0
