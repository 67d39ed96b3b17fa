"""The optional `eval` extra: check it is installed before any work starts, and say what is missing."""

from __future__ import annotations

import importlib
import warnings

from vc_app.errors import VcAppError

# (module to import, what to pip install when it fails)
EVAL_MODULES = (
    ("resemblyzer", "resemblyzer"),
    ("pocketsphinx", "pocketsphinx"),
    ("jiwer", "jiwer"),
    ("matplotlib", "matplotlib"),
    ("sklearn", "scikit-learn"),
)
# modules the extra's packages import themselves, mapped to the package that provides them
INDIRECT = {"pkg_resources": "setuptools<81", "sklearn": "scikit-learn"}


def require_eval_extra() -> None:
    """Import every evaluation dependency once.

    Raises:
        VcAppError: naming the first package to install, e.g. "... needs the package 'jiwer' ...".
    """
    for module, package in EVAL_MODULES:
        try:
            with warnings.catch_warnings():  # webrtcvad (via resemblyzer) warns that pkg_resources is deprecated
                warnings.simplefilter("ignore", UserWarning)
                importlib.import_module(module)
        except ImportError as err:
            name = (err.name or module).split(".")[0]
            missing = package if name == module else INDIRECT.get(name, name)
            raise VcAppError(f"vc-app evaluate needs the package '{missing}' (part of the eval extra): install it "
                             f"with pip install '{missing}' or pip install 'vc-app[eval]'.") from None
