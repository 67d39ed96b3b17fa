"""Vocoders: one spec string chooses one everywhere (CLI, UI, Python).

Specs:
- ``griffinlim`` or ``griffinlim:N``: N iterations (default 32); no weights, always available.
- ``hifigan`` or ``hifigan:ARG``: HiFi-GAN, jik876 or SpeechBrain checkpoint
  (default ``speechbrain/tts-hifigan-libritts-22050Hz``).
- ``bigvgan`` or ``bigvgan:ARG``: NVIDIA BigVGAN v1 or v2
  (default ``nvidia/bigvgan_v2_22khz_80band_fmax8k_256x``).

ARG is a local folder or a Hugging Face hub repo id, optionally ``@revision``.
Hub files are downloaded once through huggingface_hub and then read from its
cache (``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` never touches the network).
This module imports nothing heavy; the backends load on first use.
"""

from __future__ import annotations

from pathlib import Path

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders.base import Vocoder

DEFAULT_VOCODER = "griffinlim"
GRIFFINLIM_ITERATIONS = 32
NEURAL_FAMILIES = ("hifigan", "bigvgan")
UI_SPECS = ("griffinlim", "hifigan", "bigvgan")


def parse_spec(spec: str) -> tuple[str, str]:
    """'family[:argument]' -> (family, argument or '')."""
    family, _, argument = spec.strip().partition(":")
    return family.lower(), argument.strip()


def _unknown(spec: str) -> VcAppError:
    return VcAppError(f"Unknown vocoder {spec!r}: use 'griffinlim[:N]', 'hifigan[:HUB_ID_OR_FOLDER]' or "
                      f"'bigvgan[:HUB_ID_OR_FOLDER]'.")


def load_vocoder(spec: str, mel: MelConfig, *, device: str = "cpu") -> Vocoder:
    """Build the vocoder named by `spec` for our mel recipe `mel`.

    Raises:
        VcAppError: unknown spec, unavailable weights, or a mel recipe that does not match.
    """
    family, argument = parse_spec(spec or DEFAULT_VOCODER)
    if family == "griffinlim":
        from vc_app.vocoders.griffinlim import GriffinLim

        try:
            n_iter = int(argument) if argument else GRIFFINLIM_ITERATIONS
        except ValueError:
            raise VcAppError(f"Griffin-Lim iterations must be a whole number, not {argument!r}.") from None
        if n_iter < 1:
            raise VcAppError("Griffin-Lim needs at least one iteration.")
        return GriffinLim(mel, n_iter=n_iter)
    if family in NEURAL_FAMILIES:
        from vc_app.vocoders.sources import fetch, parse_source

        source = parse_source(family, argument)
        layout, files = fetch(source)
        if family == "bigvgan":
            from vc_app.vocoders import bigvgan

            return bigvgan.load(files, mel, name=source.spec, device=device)
        from vc_app.vocoders import hifigan

        return hifigan.load(files, mel, name=source.spec, layout=layout.name, device=device)
    raise _unknown(spec)


def download_vocoder(spec: str) -> list[Path]:
    """Fetch the files of a hub vocoder into the local cache (for offline use); returns their paths.

    Griffin-Lim and local folders need nothing, so they return [].
    Raises:
        VcAppError: unknown spec, no such repo/revision/files, or the hub cannot be reached.
    """
    family, argument = parse_spec(spec or DEFAULT_VOCODER)
    if family == "griffinlim":
        return []
    if family not in NEURAL_FAMILIES:
        raise _unknown(spec)
    from vc_app.vocoders.sources import fetch, parse_source

    source = parse_source(family, argument)
    if source.folder is not None:
        return []
    return sorted(fetch(source)[1].values())


def vocoder_availability(spec: str) -> tuple[bool, str]:
    """(usable now, why not): Griffin-Lim always; neural ones when their folder or cached files are there.

    Never touches the network (a UI can call it on every page load).
    """
    family, argument = parse_spec(spec)
    if family == "griffinlim":
        return True, ""
    if family not in NEURAL_FAMILIES:
        return False, "unknown vocoder"
    from vc_app.vocoders.sources import availability, parse_source

    try:
        return availability(parse_source(family, argument))
    except VcAppError as err:
        return False, str(err)


def vocoder_choices(specs: tuple[str, ...] | list[str] = UI_SPECS) -> list[tuple[str, bool, str]]:
    """The vocoder specs a UI can offer: (spec, usable now, why not when unusable).

    Args:
        specs: the specs to offer (default: griffinlim and the default hifigan and bigvgan); add folders or
            hub ids as "hifigan:PATH".
    """
    return [(spec, *vocoder_availability(spec)) for spec in specs]


__all__ = ["DEFAULT_VOCODER", "Vocoder", "download_vocoder", "load_vocoder", "parse_spec", "vocoder_availability",
           "vocoder_choices"]
