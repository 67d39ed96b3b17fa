"""Where a neural vocoder's files come from: a local folder, or a hub repo (downloaded once, then cached).

The argument of `hifigan:ARG` / `bigvgan:ARG` is the name of a vocoder shipped
inside an installed package (`hifigan:universal`, see `vc_app.vocoders.packaged`),
the name of a known hub vocoder (`HUB_NAMED`: `hifigan:speechbrain-libritts`,
`bigvgan:v2-22khz`, fetched at `DEFAULT_REVISIONS`), a folder, or a hub repo id
with an optional revision (`org/name@<commit>`). A packaged or known name wins over a
folder of the same name in the current directory (write `./universal` for the
folder). A folder or repo holds one of the known file layouts (`LAYOUTS`); the one
found decides how the files are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vc_app.errors import VcAppError
from vc_app.hub import is_hub_repo_id
from vc_app.vocoders.packaged import PackagedWeights, packaged, packaged_files
from vc_app.vocoders.packaged import availability as packaged_availability

# Hub vocoders known by a name that says what they are: (family, name) -> hub repo id.
HUB_NAMED = {
    ("hifigan", "speechbrain-libritts"): "speechbrain/tts-hifigan-libritts-22050Hz",  # SpeechBrain, LibriTTS
    ("bigvgan", "v2-22khz"): "nvidia/bigvgan_v2_22khz_80band_fmax8k_256x",  # NVIDIA BigVGAN v2, 22 kHz, 80 bands
}
# The revision each named repo is fetched at: its "main" branch, not a pinned commit (the repos' commit
# hashes could not be looked up where this was written). To pin one, pass `org/name@<40-hex commit>`.
DEFAULT_REVISIONS = {repo: "main" for repo in HUB_NAMED.values()}
JIK876_GENERATOR = re.compile(r"g_(\d+)")


@dataclass(frozen=True)
class Layout:
    """One checkpoint format: how its config and weights files are named."""

    name: str  # "jik876", "speechbrain" or "bigvgan"
    config: str
    weights: str  # a file name, or a pattern for jik876's g_XXXXXXXX
    describe: str


LAYOUTS = {
    "hifigan": (Layout("speechbrain", "hyperparams.yaml", "generator.ckpt",
                       "hyperparams.yaml + generator.ckpt (SpeechBrain)"),
                Layout("jik876", "config.json", "g_XXXXXXXX", "config.json + g_XXXXXXXX (jik876)")),
    "bigvgan": (Layout("bigvgan", "config.json", "bigvgan_generator.pt", "config.json + bigvgan_generator.pt"),),
}


@dataclass(frozen=True)
class VocoderSource:
    """A parsed `family:argument`: weights in an installed package, a local `folder`, or hub `repo_id` at
    `revision`."""

    family: str
    spec: str  # "family:argument" with the default filled in (shown to users)
    folder: Path | None = None
    repo_id: str = ""
    revision: str | None = None
    packaged: PackagedWeights | None = None

    @property
    def download_hint(self) -> str:
        return f"vc-app download --vocoder {self.spec}"


def parse_source(family: str, argument: str) -> VocoderSource:
    """`argument` (a packaged or known hub name, a folder, a hub id, hub id@revision) -> a `VocoderSource`.

    Raises:
        VcAppError: neither a known name, an existing folder nor a hub id.
    """
    if not argument:
        raise VcAppError(f"Vocoder {family}: name a folder or a hub repo id after '{family}:'.")
    shipped = packaged(family, argument)
    if shipped is not None:
        return VocoderSource(family, shipped.spec, packaged=shipped)
    spec = f"{family}:{argument}"
    named = HUB_NAMED.get((family, argument))
    if named is not None:
        return VocoderSource(family, spec, repo_id=named, revision=DEFAULT_REVISIONS[named])
    folder = Path(argument).expanduser()
    if folder.is_dir():
        return VocoderSource(family, spec, folder=folder)
    repo_id, _, revision = argument.partition("@")
    if not is_hub_repo_id(repo_id) or (revision == "" and "@" in argument):
        raise VcAppError(f"Vocoder {spec}: {argument!r} is neither an existing folder nor a hub repo id "
                         f"(org/name, optionally @revision).")
    return VocoderSource(family, spec, repo_id=repo_id, revision=revision or DEFAULT_REVISIONS.get(repo_id, "main"))


def find_layout(family: str, names: list[str]) -> tuple[Layout, dict[str, str]] | None:
    """The first layout of `family` whose files are all in `names` -> (layout, {"config", "weights": name})."""
    present = set(names)
    for layout in LAYOUTS[family]:
        if layout.config not in present:
            continue
        if layout.name == "jik876":
            steps = [(int(m.group(1)), n) for n in present if (m := JIK876_GENERATOR.fullmatch(n))]
            if steps:
                return layout, {"config": layout.config, "weights": max(steps)[1]}  # the latest step
        elif layout.weights in present:
            return layout, {"config": layout.config, "weights": layout.weights}
    return None


def _expected(family: str) -> str:
    return " or ".join(layout.describe for layout in LAYOUTS[family])


def fetch(source: VocoderSource) -> tuple[Layout, dict[str, Path]]:
    """Local paths of the source's config and weights (downloading from the hub if needed, with progress).

    Raises:
        VcAppError: no known layout there, or offline and not cached (says what to download or pass).
    """
    from vc_app.hub import hub_download, hub_files

    if source.packaged is not None:
        layout = next(layout for layout in LAYOUTS[source.family] if layout.name == source.packaged.layout)
        return layout, packaged_files(source.packaged)
    if source.folder is not None:
        names = [p.name for p in source.folder.iterdir() if p.is_file()]
    elif len(LAYOUTS[source.family]) == 1:  # fixed file names: no need to list the repo
        names = [LAYOUTS[source.family][0].config, LAYOUTS[source.family][0].weights]
    else:
        names = hub_files(source.repo_id, revision=source.revision, what="vocoder", hint=source.download_hint)
    found = find_layout(source.family, names)
    if found is None:
        where = f"folder {source.folder}" if source.folder is not None else f"hub repository {source.repo_id}"
        raise VcAppError(f"The {where} holds no {source.family} vocoder: it needs {_expected(source.family)}.")
    layout, roles = found
    if source.folder is not None:
        return layout, {role: source.folder / name for role, name in roles.items()}
    return layout, {role: hub_download(source.repo_id, name, revision=source.revision, what="vocoder",
                                       hint=source.download_hint) for role, name in roles.items()}


def availability(source: VocoderSource) -> tuple[bool, str]:
    """(usable now, why not): files in the folder, or in the local hub cache. Never touches the network."""
    from vc_app.hub import cached_hub_files

    if source.packaged is not None:
        return packaged_availability(source.packaged)
    if source.folder is not None:
        names = [p.name for p in source.folder.iterdir() if p.is_file()]
        if find_layout(source.family, names) is None:
            return False, f"{source.folder} lacks {_expected(source.family)}"
        return True, ""
    cached = cached_hub_files(source.repo_id, revision=source.revision)
    if cached is None or find_layout(source.family, cached) is None:
        return False, f"not downloaded yet: run '{source.download_hint}' while online"
    return True, ""

