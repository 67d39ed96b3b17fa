"""`vc-app voice`: keep a target voice as a file (create), see the kept ones (list), look inside one (show).

A voice file holds the model's speaker vector for a set of target clips and which model it belongs
to; `--target alice.voice` then works wherever target clips do (convert, batch, manifests, evaluate
pairs), without analysing the clips again. Voices live in the per-user voices folder unless
--output says otherwise; the web UI lists the same folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vc_app.commands.options import add_device_option, add_target_options, parse_mix_options, target_files


def add_parser(sub) -> None:
    p = sub.add_parser("voice", help="keep target voices as files: create, list, show", description=__doc__)
    verbs = p.add_subparsers(dest="voice_command", metavar="VERB", required=True)

    create = verbs.add_parser("create", help="make a voice file from target clips (or a blend)",
                              description="Analyse target clips once and keep their speaker vector as NAME.voice.")
    create.add_argument("name", metavar="NAME", help="the voice's name (letters, digits, spaces, _ - . ' ( ) +); "
                        "a trailing .voice is dropped")
    add_target_options(create)
    create.add_argument("--output", metavar="FILE.voice",
                        help="where to write it (default: NAME.voice in the voices folder, see vc-app voice list)")
    create.add_argument("--overwrite", action="store_true", help="replace an existing voice file")
    create.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID", help="the model the voice is for: bundle folder, "
                        ".pt file or hub repo id (default: the shipped checkpoint)")
    add_device_option(create, "the speaker encoder")
    create.set_defaults(run=run_create)

    listing = verbs.add_parser("list", help="list the voice files in a folder",
                               description="List the voice files in DIR (default: the voices folder).")
    listing.add_argument("folder", nargs="?", metavar="DIR", help="folder to list (default: the voices folder, "
                         "$VC_APP_VOICES_DIR or the per-user data folder)")
    listing.set_defaults(run=run_list)

    show = verbs.add_parser("show", help="show what a voice file holds", description="Show a voice file's contents.")
    show.add_argument("file", metavar="FILE", help="a .voice file, or a voice's name (NAME or NAME.voice not found "
                      "here is looked up in the voices folder)")
    show.set_defaults(run=run_show)


def run_create(args: argparse.Namespace) -> int:
    from vc_app.errors import VcAppError
    from vc_app.paths import check_output_path
    from vc_app.targets import check_target_file, is_voice_path, load_mix, load_target
    from vc_app.voice import VOICE_SUFFIX
    from vc_app.voice_library import VoiceLibrary, check_voice_name, find_voice

    name = check_voice_name(_strip_suffix(args.name))  # "alice.voice" names the voice alice, not alice.voice
    parts = parse_mix_options(args)
    library = VoiceLibrary()
    output = Path(args.output) if args.output else library.path(name)
    if output.suffix.lower() != VOICE_SUFFIX:
        raise VcAppError(f"Cannot write {output.name}: a voice file's name ends in {VOICE_SUFFIX}.")
    inputs = [find_voice(t) if is_voice_path(t) else Path(t) for t in target_files(args, parts)]
    if args.output or output.parent.is_dir():  # a voices folder not made yet holds nothing to refuse
        check_output_path(output, inputs=inputs, overwrite=args.overwrite, fmt="voice", try_write=bool(args.output))
    for path in target_files(args, parts):
        check_target_file(path)  # fail fast on a missing or unreadable file, before the model loads
    from dataclasses import replace

    from vc_app.converter import VoiceConverter
    from vc_app.evaluate.similarity import attach_dvector

    converter = VoiceConverter.from_specs(args.checkpoint, "griffinlim", device=args.device)
    if parts:
        voice = load_mix(parts, converter.voice)
    else:  # clips also get the d-vector that speaker similarity is measured against (with the eval extra)
        voice = load_target(args.target, lambda clips: attach_dvector(converter.voice(clips), clips))
    voice = replace(voice, name=name)
    if not args.output:
        output.parent.mkdir(parents=True, exist_ok=True)
    voice.save(output, overwrite=args.overwrite)
    print(f"wrote {output} (voice {voice.name!r}: {_clips(voice.clips)}, model {voice.model})")
    return 0


def _strip_suffix(name: str) -> str:
    """A voice name given as a file name (`alice.voice`) without its suffix."""
    from vc_app.voice import VOICE_SUFFIX

    return name[:-len(VOICE_SUFFIX)] if name.lower().endswith(VOICE_SUFFIX) and len(name) > len(VOICE_SUFFIX) else name


def _clips(clips) -> str:
    seconds = sum(c.seconds for c in clips)
    return f"{len(clips)} clip{'s' * (len(clips) != 1)}, {seconds:.1f} s"


def run_list(args: argparse.Namespace) -> int:
    from vc_app.errors import VcAppError
    from vc_app.voice_library import default_voices_dir, list_voices

    folder = Path(args.folder) if args.folder else default_voices_dir()
    if args.folder and not folder.is_dir():
        raise VcAppError(f"{folder} is not a folder.")
    found = list_voices(folder) if folder.is_dir() else []
    if not found:
        print(f"No voices in {folder} yet; make one with: vc-app voice create NAME --target CLIP.wav")
        return 0
    rows = [("NAME", "MODEL", "CLIPS", "SECONDS", "CREATED", "FILE")]
    broken = []
    for path, meta in found:
        if isinstance(meta, str):
            broken.append(meta)
            continue
        kind = "blend" if meta["mix"] else str(len(meta["clips"]))
        rows.append((meta["name"], meta["model"], kind, f"{sum(c.seconds for c in meta['clips']):.1f}",
                     meta["created_at"].replace("T", " ").replace("Z", " UTC"), path.name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"({len(rows) - 1} voice{'s' * (len(rows) != 2)} in {folder})")
    for sentence in broken:
        print(f"skipped: {sentence}", file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    import numpy as np

    from vc_app.voice import describe_mel, read_voice_file

    path = _voice_to_show(args.file)
    meta, tensors = read_voice_file(path)
    speaker = tensors["speaker"]
    lines = [("file", str(path)), ("name", meta["name"]),
             ("model", f"{meta['model']} (weights sha256 {meta['model_sha256']})"),
             ("mel recipe", describe_mel(meta["mel"])),
             ("speaker vector", f"{speaker.size} values, norm {float(np.linalg.norm(speaker)):.3f}"),
             ("clips", _clips(meta["clips"]) + "".join(f"\n    {c.name} ({c.seconds:.1f} s)" for c in meta["clips"]))]
    if meta["mix"]:
        lines.append(("blend of", ", ".join(f"{100 * w:.0f}% {n}" for n, w in meta["mix"])))
    lines += [("d-vector", f"yes (Resemblyzer, {tensors['dvector'].size} values)" if "dvector" in tensors
               else "no (made without the eval extra, or a blend)"),
              ("created", meta["created_at"]),
              ("format", f"vc_app voice format 1, {path.stat().st_size} bytes, written by vc_app "
                         f"{meta['vc_app_version'] or '?'}")]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key + ':':<{width + 1}} {value}")
    return 0


def _voice_to_show(text: str) -> Path:
    """The voice file `vc-app voice show TEXT` means: the path as given, or in the voices folder by file name
    (`alice.voice`) or by voice name (`alice`); one sentence naming both places when it is in neither."""
    from vc_app.errors import VcAppError
    from vc_app.targets import is_voice_path
    from vc_app.voice import VOICE_SUFFIX
    from vc_app.voice_library import default_voices_dir, find_voice

    given = Path(text).expanduser()
    if given.exists() or given.parent != Path("."):
        return given  # a path: read as it is (a missing one is one sentence from read_voice_file)
    for name in (text,) if is_voice_path(text) else (text, text + VOICE_SUFFIX):
        found = find_voice(name)
        if found.is_file():
            return found
    folder = default_voices_dir()
    raise VcAppError(f"There is no voice file {text} here or in the voices folder {folder}; "
                     "vc-app voice list shows the voices there.")
