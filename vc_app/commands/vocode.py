"""`vc-app vocode`: turn a saved mel (or a clip, analysed first) into audio with one vocoder.

Hear a vocoder on its own: resynthesise a clip (our mel analysis -> vocoder),
or vocode a mel saved as .npy (80 x T, natural-log, our recipe).
"""

from __future__ import annotations

import argparse

from vc_app.commands.options import add_device_option, add_vocoder_option


def add_parser(sub) -> None:
    p = sub.add_parser("vocode", help="mel (.npy) or clip -> audio through one vocoder", description=__doc__)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="a .npy log-mel of shape (80, frames) in vc_app's recipe, or an audio clip to resynthesise")
    add_vocoder_option(p)
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the audio (.wav/.flac/.ogg)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_device_option(p, "the vocoder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vc_app.paths import check_output_path

    # a bad --output is refused before PyTorch is even imported
    check_output_path(args.output, inputs=[args.input], overwrite=args.overwrite, try_write=True)
    from vc_app.config import MelConfig
    from vc_app.devices import resolve_device
    from vc_app.resynth import vocode_file

    out = vocode_file(args.input, args.output, args.vocoder, MelConfig(), device=str(resolve_device(args.device)),
                      overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
