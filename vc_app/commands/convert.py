"""`vc-app convert`: one source clip in the voice of one or more target clips."""

from __future__ import annotations

import argparse

from vc_app.commands.options import add_model_options, add_target_options, add_threads_option


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert one clip", description=__doc__)
    p.add_argument("--source", required=True, metavar="FILE", help="clip whose words are kept")
    add_target_options(p)
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the result (.wav/.flac/.ogg)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_threads_option(p)
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from vc_app.audio import check_audio_file
    from vc_app.commands.options import apply_threads, check_threads, parse_mix_options, target_files
    from vc_app.paths import check_output_path
    from vc_app.targets import check_target_file, load_mix, load_target

    parts = parse_mix_options(args)
    # the edge: bad options and inputs are refused here, once, before PyTorch is even imported (numpy and
    # soundfile only); the library below trusts what was checked (the output path, the source's header)
    check_output_path(args.output, inputs=[args.source, *target_files(args, parts)], overwrite=args.overwrite,
                      try_write=True)
    args.threads = check_threads(args.threads)
    source_info = check_audio_file(args.source, "source")
    for path in target_files(args, parts):
        check_target_file(path)
    from vc_app.audio import AudioStream, write_audio
    from vc_app.converter import VoiceConverter

    apply_threads(args.threads)
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    voice = load_mix(parts, converter.voice) if parts else load_target(args.target, converter.voice)
    source = AudioStream(args.source, converter.sample_rate, info=source_info)
    wav = converter.convert(source, voice, progress=sys.stderr.isatty())
    out = write_audio(args.output, wav, converter.sample_rate, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
