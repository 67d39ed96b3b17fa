"""`vc-app evaluate`: measure a model on pairs of clips (speaker similarity, WER, MCD, naturalness and its
ladder, disentanglement, speed).

Pairs come from a CSV with the columns source,target[,reference][,text] (target may list several clips
separated by ';'; paths may be relative to the CSV's folder), or are built from a folder-per-speaker
corpus with --pairs-from-corpus. Every source is also measured on the naturalness ladder: unconverted,
copy-synthesis (its mel through the vocoder), converted to its own speaker (another clip of it; itself),
so a report shows where naturalness is lost. Needs the eval extra: pip install 'vc-app[eval]'.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from vc_app.commands.options import add_model_options, add_threads_option, apply_threads, check_threads


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model on source/target pairs", description=__doc__)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--pairs", metavar="CSV", help="pairs file: source,target[,reference][,text]")
    given.add_argument("--pairs-from-corpus", metavar="DIR",
                       help="build unseen-speaker pairs from a folder-per-speaker corpus")
    p.add_argument("--speakers", metavar="A,B,...",
                   help="speakers (folder names) to use from --pairs-from-corpus / --probe-corpus (default: all)")
    p.add_argument("--pairs-per-speaker", type=int, default=5, metavar="N",
                   help="source clips per ordered (source, target) speaker pair (default: 5)")
    p.add_argument("--target-clips", type=int, default=1, metavar="K",
                   help="target clips per pair with --pairs-from-corpus (default: 1, one-shot)")
    p.add_argument("--probe-corpus", metavar="DIR",
                   help="folder-per-speaker clips for the disentanglement probes (default: every clip of the "
                        "pairs' speakers)")
    p.add_argument("--seed", type=int, default=0, help="seed for pair sampling and probe splits (default: 0)")
    p.add_argument("--max-pairs", type=int, metavar="N",
                   help="measure only N pairs spread evenly over the pairs (first and last included): the same "
                        "subset for every model, for screening short training runs (default: all)")
    p.add_argument("--no-ladder", dest="ladder", action="store_false",
                   help="skip the naturalness ladder's two self-reconstructions per source: two conversions, "
                        "each measured like one, which about doubles the time of a run whose pairs have their own "
                        "sources")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for per_pair.csv, summary.json, report.md")
    p.add_argument("--keep-audio", action="store_true", help="also write the converted clips to DIR/audio/")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in DIR")
    add_threads_option(p)
    add_model_options(p)
    p.set_defaults(run=run)


def _speakers(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def load_pairs(args: argparse.Namespace):
    """The pairs to measure and the clips to probe (None: the pairs' own clips)."""
    from vc_app.pairs import check_pair_audio, corpus_utterances, pairs_from_corpus, read_pairs

    speakers = _speakers(args.speakers)
    if args.pairs:
        pairs = read_pairs(args.pairs)
    else:
        pairs = pairs_from_corpus(args.pairs_from_corpus, speakers, pairs_per_speaker=args.pairs_per_speaker,
                                  target_clips=args.target_clips, seed=args.seed)
    check_pair_audio(pairs)
    probe_root = args.probe_corpus or args.pairs_from_corpus
    probe_clips = None
    if probe_root:
        probe_clips = [(u.path, u.speaker) for utts in corpus_utterances(probe_root, speakers).values() for u in utts]
    return pairs, probe_clips


def run(args: argparse.Namespace) -> int:
    from vc_app.errors import VcAppError
    from vc_app.evaluate.extras import require_eval_extra

    args.threads = check_threads(args.threads)
    out = Path(args.out)
    if (out / "summary.json").exists() and not args.overwrite:
        raise VcAppError(f"{out} already holds an evaluation; pass --overwrite to replace it.")
    if args.max_pairs is not None and args.max_pairs < 1:
        raise VcAppError(f"--max-pairs must be at least 1, not {args.max_pairs}.")
    pairs, probe_clips = load_pairs(args)
    require_eval_extra()
    from vc_app.converter import VoiceConverter
    from vc_app.evaluate.report import console_text
    from vc_app.evaluate.runner import evaluate, spread_subset

    apply_threads(args.threads)
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    info = {"checkpoint": converter.bundle.source or args.checkpoint, "vocoder": converter.vocoder.name,
            "training_steps": converter.bundle.training_steps,
            "command": shlex.join(["vc-app", *sys.argv[1:]]) if sys.argv else "vc-app evaluate"}
    summary = evaluate(spread_subset(pairs, args.max_pairs), converter, out, probe_clips=probe_clips,
                       keep_audio=args.keep_audio, seed=args.seed, ladder=args.ladder, progress=sys.stderr.isatty(),
                       run_info=info)
    print(console_text(summary))
    print(f"wrote {out / 'report.md'}, {out / 'summary.json'}, {out / 'per_pair.csv'}")
    return 0
