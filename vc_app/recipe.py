"""Recipe stages as library calls, shared by recipes/vctk/run.sh and recipes/folder/run.sh.

    python -m vc_app.recipe prepare   --corpus-type folder|vctk --root DIR [--root DIR2 ...] --out data/ [--mic 1|2]
    python -m vc_app.recipe manifests --corpus data/corpus.csv --out data/ [--unseen a,b | --n-unseen N] [--seed S]
                                      [--heldout-sets lists/heldout-sets.json]
    python -m vc_app.recipe sets      --split data/split.json [--pairs-per-speaker N]
    python -m vc_app.recipe features  --manifests data/ --out feats/ [--workers N]
    python -m vc_app.recipe evaluate  --checkpoint exp/adain --features feats/unseen --out heldout.json
    python -m vc_app.recipe pairs     --manifest data/unseen.csv --out pairs.csv [--speakers A,B]
                                      [--pairs-per-speaker N] [--targets N] [--max-pairs N]
    python -m vc_app.recipe export    --checkpoint exp/adain --out bundle/ [--metrics heldout.json]
                                      [--half] [--push-to-hub REPO]

A --checkpoint may be an experiment folder (its newest checkpoint is used) or one step-N folder.
Every stage can be re-run: manifests are rewritten from the same seed, features skip clips already
extracted and packs already up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vc_app.errors import VcAppError, add_debug_option, run_entry_point
from vc_app.paths import atomic_write

if TYPE_CHECKING:
    from vc_app.bundle import Bundle

SPLITS = ("train", "valid", "unseen")
CORPUS, SPEAKERS = "corpus.csv", "speakers.json"


def stage_prepare(args: argparse.Namespace) -> None:
    """Stage 0: scan the corpus (or several folder corpora, joined) into data/corpus.csv, and
    data/speakers.json (VCTK speaker-info, or a folder corpus's speakers.csv tables, when present)."""
    from collections import Counter

    from vc_app.corpus import (
        detect_vctk_release,
        read_speaker_info,
        read_speaker_tables,
        scan_folders,
        scan_vctk,
        write_manifest,
    )

    roots = args.root
    if args.corpus_type == "vctk":
        if len(roots) > 1:
            raise VcAppError("A VCTK corpus is one folder; give several --root only with --corpus-type folder.")
        release = detect_vctk_release(roots[0])
        utts, info = scan_vctk(roots[0], mic=args.mic), read_speaker_info(roots[0])
    else:
        release = "folder"
        utts = scan_folders(roots, warn=lambda m: print(m, file=sys.stderr))
        info = {s: v for root in roots for s, v in read_speaker_tables(root).items()}
    out = Path(args.out)
    write_manifest(out / CORPUS, utts)
    counts = Counter(u.speaker for u in utts)
    speakers = {s: {"utterances": n, **info.get(s, {})} for s, n in sorted(counts.items())}
    resolved = [str(Path(root).resolve()) for root in roots]
    summary = {"corpus_type": args.corpus_type, "release": release, "root": resolved[0], "roots": resolved,
               "mic": args.mic if release == "0.92" else None, "speakers": speakers}
    (out / SPEAKERS).write_text(json.dumps(summary, indent=1) + "\n")
    described = f"VCTK {release}" + (f", mic {args.mic}" if release == "0.92" else "") if args.corpus_type == "vctk" \
        else "folder corpus" + (f" of {len(roots)} roots" if len(roots) > 1 else "")
    single = sum(1 for n in counts.values() if n == 1)
    print(f"{described}: {len(utts)} clips of {len(counts)} speakers"
          + (f" ({single} with a single clip: training only)" if single else "")
          + (f" (speaker tables for {len(set(info) & set(counts))})" if info else "") + f" -> {out / CORPUS}")


def stage_manifests(args: argparse.Namespace) -> None:
    """Stage 1: train / valid / unseen split (by seed, or the named unseen speakers)."""
    from vc_app.corpus import read_manifest, scan_folder, scan_vctk, split_corpus, write_manifest

    if args.corpus:
        utts = read_manifest(args.corpus)
        info_path = Path(args.corpus).parent / SPEAKERS
    elif args.root:
        utts = scan_vctk(args.root, mic=args.mic) if args.corpus_type == "vctk" else scan_folder(args.root)
        info_path = None
    else:
        raise VcAppError("Give --corpus data/corpus.csv (from the prepare stage) or --root CORPUS_DIR.")
    info = json.loads(info_path.read_text())["speakers"] if info_path and info_path.is_file() else {}
    genders = {s: v["gender"] for s, v in info.items() if v.get("gender")}
    sets = read_heldout_sets(args.heldout_sets) if args.heldout_sets else {}
    named = sorted({s for spec in sets.values() for s in spec["speakers"]} | set(_names(args.unseen))) or None
    cross = _names(args.cross_corpus)
    split = split_corpus(utts, n_unseen=args.n_unseen, unseen=named, cross_corpus=cross,
                         valid_fraction=args.valid_fraction, seed=args.seed, genders=genders)
    out = Path(args.out)
    for name in SPLITS:
        write_manifest(out / f"{name}.csv", getattr(split, name))
    speakers = {name: sorted({u.speaker for u in getattr(split, name)}) for name in SPLITS}
    sets = sets or default_sets(speakers["unseen"], sorted(cross))  # of --unseen / --n-unseen and --cross-corpus
    (out / "split.json").write_text(json.dumps({"seed": args.seed, **speakers, "cross_corpus": sorted(cross),
                                                "sets": sets}, indent=1) + "\n")
    held = ", ".join(f"{s} ({genders[s]})" if s in genders else s for s in speakers["unseen"])
    single = len({u.speaker for u in split.train} - {u.speaker for u in split.valid})
    print(f"{len(split.train)} train, {len(split.valid)} valid, {len(split.unseen)} unseen utterances; "
          f"unseen speakers: {held}; held-out sets: "
          + ", ".join(f"{name} ({len(spec['speakers'])})" for name, spec in sets.items())
          + (f"; {single} training speakers have no validation clip (too few clips)" if single else ""))


def read_heldout_sets(path: str | Path) -> dict[str, dict]:
    """A held-out sets file: JSON {set name: {"speakers": [...], optional "pairs_per_speaker", "max_pairs",
    "text_pairs"}}. Every speaker of every set is held out of training whole; stage 4 evaluates each set
    on pairs among its own speakers. A speaker in two sets is refused (its numbers would count twice)."""
    path = Path(path)
    if not path.is_file():
        raise VcAppError(f"Held-out sets file {path} does not exist.")
    try:
        sets = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise VcAppError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}).") from None
    allowed = {"speakers", "pairs_per_speaker", "max_pairs", "text_pairs", "about"}
    seen: dict[str, str] = {}
    for name, spec in sets.items():
        if not isinstance(spec, dict) or not spec.get("speakers") or set(spec) - allowed:
            raise VcAppError(f"Set {name!r} in {path} must be an object with a non-empty 'speakers' list "
                             f"and only the keys {', '.join(sorted(allowed))}.")
        for speaker in spec["speakers"]:
            if speaker in seen:
                raise VcAppError(f"Speaker {speaker} is in both set {seen[speaker]!r} and set {name!r} of {path}.")
            seen[speaker] = name
    return sets


def default_sets(unseen: list[str], cross: list[str]) -> dict[str, dict]:
    """The held-out sets without a sets file: in-domain (the unseen speakers less `cross`) and cross-corpus."""
    sets = {"in-domain": {"speakers": [s for s in unseen if s not in cross]}}
    return {**sets, "cross-corpus": {"speakers": cross}} if cross else sets


def stage_sets(args: argparse.Namespace) -> None:
    """Stage 4's list of held-out sets from split.json, one tab-separated line each: name, speakers
    (comma-separated), pairs per ordered speaker pair, most pairs (0: all), text pairs (true/false).
    A split.json written before sets existed gives `default_sets`."""
    split = json.loads(Path(args.split).read_text())
    sets = split.get("sets")
    if sets is None:
        sets = default_sets(split["unseen"], split.get("cross_corpus", []))
    for name, spec in sets.items():
        if spec["speakers"]:
            per_speaker = spec.get("pairs_per_speaker", args.pairs_per_speaker)
            print("\t".join([name, ",".join(spec["speakers"]), str(per_speaker), str(spec.get("max_pairs", 0)),
                             str(spec.get("text_pairs", True)).lower()]))


def _names(text: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def stage_features(args: argparse.Namespace) -> None:
    """Stage 2: mels of every split into one shared per-utterance cache (one worker pool), then a pack per split."""
    from vc_app.config import MelConfig
    from vc_app.corpus import read_manifest
    from vc_app.features import extract_features, pack_features

    mel = MelConfig()
    manifests, out = Path(args.manifests), Path(args.out)
    splits = {name: read_manifest(manifests / f"{name}.csv") for name in SPLITS
              if (manifests / f"{name}.csv").is_file()}
    if not splits:
        raise VcAppError(f"{manifests} has no train/valid/unseen manifests (run the manifests stage first).")
    failures = extract_features([u for utts in splits.values() for u in utts], out / "all", mel,
                                workers=args.workers, progress=not args.quiet)
    for utt_id, reason in failures.items():
        print(f"skipped {utt_id}: {reason}", file=sys.stderr)
    for name, utts in splits.items():
        if not utts:
            print(f"{name}: empty, skipped")
            continue
        cache = out / name
        cache.mkdir(parents=True, exist_ok=True)
        _link_utts(out / "all" / "utts", cache / "utts")
        pack_features(utts, cache, mel)
        stats = json.loads((cache / "stats.json").read_text())
        hours = stats["frames"] * mel.hop_length / mel.sample_rate / 3600
        print(f"{name}: {stats['utterances']} clips of {stats['speakers']} speakers, {hours:.2f} h -> {cache}")


def _link_utts(shared: Path, own: Path) -> None:
    """Each split's cache reads the shared per-utterance folder (one extraction for all splits)."""
    if own.is_symlink() or own.exists():
        return
    own.symlink_to(shared.resolve(), target_is_directory=True)


def stage_evaluate(args: argparse.Namespace) -> None:
    """Stage 4: reconstruction and conversion losses on the held-out (unseen) speakers. PyTorch gets no more
    threads than the idle cores (`apply_threads`): on a busy machine its default two stalled this stage
    for minutes (measured: 4 min 46 s for the smoke line's 2 held-out speakers beside one busy process)."""
    from vc_app.bundle import load_bundle
    from vc_app.commands.options import apply_threads
    from vc_app.features import FeatureCache
    from vc_app.train.checkpoints import resolve_checkpoint
    from vc_app.train.heldout import heldout_losses

    apply_threads(None)
    checkpoint = resolve_checkpoint(args.checkpoint)
    bundle = load_bundle(checkpoint)
    metrics = heldout_losses(bundle.model, FeatureCache.open(args.features), n_pairs=args.n_pairs,
                             max_frames=args.max_frames, seed=args.seed)
    report = {**metrics, "checkpoint": str(checkpoint), "steps": bundle.training_steps}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(report, indent=1) + "\n"))
    print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)) + f" -> {out}")


def stage_pairs(args: argparse.Namespace) -> None:
    """Conversion pairs among the unseen speakers of a manifest, as a pairs CSV for `vc-app evaluate`.

    Every ordered pair of distinct speakers (optionally only `--speakers`) gets `--pairs-per-speaker`
    source clips, each with `--targets` clips of the target speaker saying other sentences; when the
    corpus is parallel (same text, or same file name as in VCC and ARCTIC) the target speaker's clip of
    the source's sentence is the reference for MCD (`vc_app.pairs.speaker_pairs`).
    """
    from vc_app.corpus import read_manifest
    from vc_app.pairs import by_speaker, speaker_pairs, write_pairs

    groups = by_speaker(read_manifest(args.manifest), speakers=_names(args.speakers) or None,
                        exclude=_names(args.exclude_speakers), where=args.manifest)
    pairs = speaker_pairs(groups, pairs_per_speaker=args.pairs_per_speaker, target_clips=args.targets,
                          seed=args.seed, where=args.manifest)
    if 0 < args.max_pairs < len(pairs):  # a seeded subset, in the original order (many speakers, few pairs each)
        import random

        keep = set(random.Random(f"{args.seed}/max-pairs").sample(range(len(pairs)), args.max_pairs))
        pairs = [p for i, p in enumerate(pairs) if i in keep]
    write_pairs(args.out, pairs)
    print(f"{len(pairs)} pairs among {len(groups)} speakers ({sum(bool(p.reference) for p in pairs)} with a "
          f"parallel reference) -> {args.out}")


def export_discriminator(checkpoint: Path, out: Path, half: bool) -> None:
    """Copy the checkpoint's discriminator weights beside the exported bundle (a relay leg's opponent), and its
    speaker identifier's when it has one (the spk_id term), or refuse in one sentence when the checkpoint was
    trained without a discriminator."""
    from safetensors.torch import load_file, save_file

    from vc_app.train.checkpoints import DISCRIMINATOR_FILE, IDENTIFIER_FILE

    source = checkpoint / DISCRIMINATOR_FILE
    if not source.is_file():
        raise VcAppError(f"{checkpoint} has no {DISCRIMINATOR_FILE}: it was trained without the discriminator.")
    for name in (DISCRIMINATOR_FILE, IDENTIFIER_FILE):  # the speaker identifier too, when the run had spk_id
        if (checkpoint / name).is_file():
            weights = load_file(str(checkpoint / name))
            save_file({k: v.half() if half and v.is_floating_point() else v for k, v in weights.items()},
                      str(out / name))


def stage_export(args: argparse.Namespace) -> None:
    """Stage 5: the checkpoint as an inference bundle (with a model card), optionally pushed to the hub."""
    from vc_app.bundle import load_bundle, save_bundle
    from vc_app.train.checkpoints import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)
    bundle = load_bundle(checkpoint)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics and Path(args.metrics).is_file() else None
    reports: dict[str, str] = {}
    for item in args.report or []:
        title, sep, path = item.rpartition("=") if "=" in item else ("", "", item)
        if Path(path).is_file():
            reports[title or f"Evaluation {len(reports) + 1}"] = Path(path).read_text()
    out = Path(args.out)
    card = Path(args.card).read_text() if args.card else model_card(bundle, args.name or out.name, metrics,
                                                                     reports, args.note)
    training = bundle.training
    if args.paths_relative_to:  # the card and the training record (its feature folders) name no machine's folders
        card = relative_paths(card, Path(args.paths_relative_to))
        training = json.loads(relative_paths(json.dumps(training), Path(args.paths_relative_to)))
    save_bundle(bundle.model, bundle.mel, out, training=training, card=card, half=args.half)
    if args.with_discriminator:
        export_discriminator(checkpoint, out, half=args.half)
    print(f"exported {checkpoint} -> {out}")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.push_to_hub, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(out), repo_id=args.push_to_hub, repo_type="model")
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")


def relative_paths(text: str, base: Path) -> str:
    """`text` with every absolute path written relative to `base` (model cards name no machine's folders)."""
    import os
    import re

    base = base.resolve()

    def relative(match: re.Match) -> str:
        return match.group(1) + os.path.relpath(match.group(2), base)

    return re.sub(r"(^|[\s`'\"=(,;])(/[^\s`'\",;)]+)", relative, text, flags=re.MULTILINE)


def model_card(bundle: Bundle, name: str, metrics: dict | None, reports: dict[str, str] | None = None,
               note: str = "") -> str:
    """A Markdown model card from a bundle's training summary, the held-out losses (stage 4) and
    `vc-app evaluate` reports ({title: report.md text}; headings moved one level down, plots left out)."""
    training, model, mel = bundle.training, bundle.model.cfg, bundle.mel
    cfg = training.get("config", {})  # the training run's own config, as saved (a dict)
    data = cfg.get("data", {})
    hours = training.get("train_frames", 0) * mel.hop_length / mel.sample_rate / 3600
    lines = [f"# {name}: AdaIN-VC for vc_app", "",
             "One-shot voice conversion (Chou, Yeh & Lee 2019) trained with the vc_app recipes.", "",
             *([note, ""] if note else []),
             f"- steps: {'?' if bundle.training_steps is None else bundle.training_steps}"
             + (f" ({training.get('steps')} in this run, started from {training['init_from']} at step "
                f"{training.get('init_steps', 0)})" if training.get("init_from") else ""),
             f"- training data: {training.get('train_utterances', '?')} utterances of "
             f"{training.get('train_speakers', '?')} speakers ({hours:.2f} h)",
             f"- bottleneck: {model.bottleneck}; adversary: "
             f"{'on' if cfg.get('adversary', {}).get('enabled') else 'off'}; c_h {model.c_h}, "
             f"segment {data.get('segment_frames', '?')} frames, batch {data.get('batch_size', '?')}",
             f"- mel: {mel.sample_rate} Hz, {mel.n_mels} bands, hop {mel.hop_length} "
             "(the HiFi-GAN / BigVGAN dialect)", ""]
    if metrics:
        lines += ["## Held-out speakers: training losses (recipe stage 4)", "",
                  f"{metrics.get('pairs')} conversion pairs among {metrics.get('speakers')} unseen speakers, "
                  "measured with the model's own losses; `spk_cos_*` and `closer_to_target` use the model's own "
                  "speaker encoder on the converted mel, so they show consistency, not what a listener hears. "
                  "The independent judge is `vc-app evaluate` below.", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]
        lines.append("")
    for title, report in (reports or {}).items():
        lines += [f"## {title} (`vc-app evaluate`)", *_without_plots(report.splitlines()[1:])]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def _without_plots(lines: list[str]) -> list[str]:
    """Markdown `lines` one heading level down, without images and without the headings left empty."""
    kept = [f"#{line}" if line.startswith("#") else line for line in lines if not line.startswith("![")]
    out: list[str] = []
    for i, line in enumerate(kept):
        rest = next((later for later in kept[i + 1:] if later.strip()), "#")
        if not (line.startswith("#") and rest.startswith("#")):
            out.append(line)
    return out


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vc_app.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_debug_option(parser)
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("prepare", help="stage 0: scan a corpus into data/corpus.csv")
    p.add_argument("--corpus-type", choices=("folder", "vctk"), default="folder")
    p.add_argument("--root", required=True, action="append",
                   help="the corpus folder; repeat to join several folder corpora (speaker names must differ)")
    p.add_argument("--out", required=True)
    p.add_argument("--mic", type=int, default=1, choices=(1, 2), help="VCTK 0.92 microphone")
    p.set_defaults(func=stage_prepare)
    m = sub.add_parser("manifests", help="stage 1: split into train / valid / unseen")
    m.add_argument("--corpus", help="data/corpus.csv from the prepare stage")
    m.add_argument("--corpus-type", choices=("folder", "vctk"), default="folder", help="with --root: scan directly")
    m.add_argument("--root", help="scan this corpus instead of reading --corpus")
    m.add_argument("--out", required=True)
    m.add_argument("--mic", type=int, default=1, choices=(1, 2), help="VCTK 0.92 microphone (with --root)")
    m.add_argument("--unseen", default="", help="comma-separated speakers to hold out (overrides --n-unseen)")
    m.add_argument("--cross-corpus", default="", help="comma-separated speakers from other recordings, held out "
                   "too and evaluated as their own set")
    m.add_argument("--heldout-sets", metavar="FILE", help="JSON {set: {speakers: [...], ...}}: every set's "
                   "speakers held out whole, each set evaluated on its own (e.g. lists/heldout-sets.json)")
    m.add_argument("--n-unseen", type=int, default=20)
    m.add_argument("--valid-fraction", type=float, default=0.05)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=stage_manifests)
    f = sub.add_parser("features", help="stage 2: extract and pack mels for every split")
    f.add_argument("--manifests", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=stage_features)
    t = sub.add_parser("sets", help="stage 4: the held-out sets of a split.json, one line each")
    t.add_argument("--split", required=True, help="data/split.json from the manifests stage")
    t.add_argument("--pairs-per-speaker", type=int, default=8, help="for sets that do not set their own")
    t.set_defaults(func=stage_sets)
    v = sub.add_parser("evaluate", help="stage 4: held-out reconstruction and conversion losses")
    v.add_argument("--checkpoint", required=True)
    v.add_argument("--features", required=True, help="packed features of the unseen split")
    v.add_argument("--out", required=True, help="JSON file for the numbers")
    v.add_argument("--n-pairs", type=int, default=100)
    v.add_argument("--max-frames", type=int, default=512)
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=stage_evaluate)
    r = sub.add_parser("pairs", help="unseen-speaker conversion pairs for vc-app evaluate")
    r.add_argument("--manifest", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--speakers", default="", help="comma-separated speakers to pair (default: all in the manifest)")
    r.add_argument("--exclude-speakers", default="", help="comma-separated speakers to leave out")
    r.add_argument("--pairs-per-speaker", type=int, default=8, help="source clips per ordered speaker pair")
    r.add_argument("--targets", type=int, default=3, help="target clips per pair")
    r.add_argument("--max-pairs", type=int, default=0, help="keep a seeded subset of this many pairs (0: all)")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=stage_pairs)
    e = sub.add_parser("export", help="stage 5: write a checkpoint as an inference bundle")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--name", help="model name for the card (default: the folder name)")
    e.add_argument("--metrics", help="held-out metrics JSON (stage 4) for the model card")
    e.add_argument("--note", default="", help="a paragraph for the model card, e.g. the data and its credits")
    e.add_argument("--paths-relative-to", metavar="DIR", help="write the card's and config's paths relative to DIR "
                   "(e.g. the recipe folder) instead of as this machine's absolute paths")
    e.add_argument("--report", action="append", metavar="[TITLE=]PATH",
                   help="vc-app evaluate's report.md (stage 4) for the model card, under TITLE; "
                   "repeat for several evaluations")
    e.add_argument("--card", help="Markdown model card to use instead of the generated one")
    e.add_argument("--half", action="store_true", help="store float16 weights")
    e.add_argument("--with-discriminator", action="store_true",
                   help="also write the discriminator's weights, and the speaker identifier's when the run had one "
                   "(a relay folder: the next leg keeps them)")
    e.add_argument("--push-to-hub", metavar="REPO", help="upload the bundle to this hub repo")
    e.set_defaults(func=stage_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    return run_entry_point("python -m vc_app.recipe", lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
