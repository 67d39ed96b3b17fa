"""Vocoders: one spec string chooses one everywhere (CLI, UI, Python).

Specs: ``griffinlim`` or ``griffinlim:N`` (N iterations, default 32).
"""

from __future__ import annotations

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders.base import Vocoder

DEFAULT_VOCODER = "griffinlim"
GRIFFINLIM_ITERATIONS = 32


def parse_spec(spec: str) -> tuple[str, str]:
    """'family[:argument]' -> (family, argument or '')."""
    family, _, argument = spec.strip().partition(":")
    return family.lower(), argument.strip()


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
    raise VcAppError(f"Unknown vocoder {spec!r}: use 'griffinlim' or 'griffinlim:N'.")


def vocoder_choices() -> list[tuple[str, bool, str]]:
    """The vocoder specs a UI can offer: (spec, usable now, why not when unusable)."""
    return [("griffinlim", True, "")]


__all__ = ["DEFAULT_VOCODER", "Vocoder", "load_vocoder", "parse_spec", "vocoder_choices"]
