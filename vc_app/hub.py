"""Downloads from the Hugging Face hub, with errors a user can act on.

Everything fetched from the hub (bundles, vocoder weights) goes through
`hub_download`, which honours `HF_HUB_OFFLINE` and `HF_HUB_CACHE` (read by
huggingface_hub itself) and turns its exceptions into one sentence.
`hub_files` lists a repo's files (from the hub, or from the local cache when
the hub cannot be reached), for repos whose file names are not fixed.

The hub is probed first with one TCP connection (`hub_unreachable`): when its
host cannot be resolved or refuses, we go to the cache at once instead of
sitting through huggingface_hub's retries (about 24 s per request), and any
network error of whichever HTTP library huggingface_hub uses (httpx, httpx2,
requests...) becomes the same sentence.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from vc_app.errors import VcAppError

COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name, as the hub spells repo ids
PROBE_SECONDS = 3.0  # a hub that does not answer a TCP connection within this is taken as unreachable
# Packages whose exceptions mean "the network failed", whatever HTTP client huggingface_hub is built on.
NETWORK_PACKAGES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "h2", "anyio", "requests",
                              "urllib3", "aiohttp", "ssl", "socket"})
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def is_hub_repo_id(text: str) -> bool:
    """Whether `text` has the form of a hub repo id, org/name (no revision, no path beyond it)."""
    return HUB_REPO_ID.fullmatch(text) is not None


def is_network_error(err: BaseException) -> bool:
    """True for a connection, DNS, TLS or timeout failure raised by any HTTP client or by the socket layer."""
    if isinstance(err, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return any(cls.__module__.split(".")[0] in NETWORK_PACKAGES for cls in type(err).__mro__[:-2])


@functools.lru_cache(maxsize=8)
def _probe(endpoint: str) -> str | None:
    """Why `endpoint` cannot be reached by one TCP connection (None: it can). Asked once per process."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=PROBE_SECONDS).close()
    except OSError as err:
        return f"{url.hostname}:{port}: {err.strerror or err}".rstrip(": ")
    return None


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now (HF_HUB_OFFLINE, or a failed connection), or None.

    Behind a proxy (HTTPS_PROXY and friends) no probe is made: only the proxy knows.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    return _probe(constants.ENDPOINT)


@contextlib.contextmanager
def _plain_errors(repo_id: str, filename: str, revision: str | None, what: str, hint: str | None):
    """Turn huggingface_hub's exceptions, and network errors of its HTTP client, into one `VcAppError` sentence."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except HFValidationError:
        raise VcAppError(f"{repo_id!r} is neither an existing folder nor a valid hub repo id.") from None
    except LocalEntryNotFoundError:
        raise _not_cached(repo_id, filename, what, hint) from None
    except RepositoryNotFoundError:
        raise VcAppError(f"The hub has no repository {repo_id} (or it is private).") from None
    except RevisionNotFoundError:
        raise VcAppError(f"The hub repository {repo_id} has no revision {revision}.") from None
    except EntryNotFoundError:
        raise VcAppError(f"The hub repository {repo_id} has no file {filename}.") from None
    except Exception as err:  # noqa: BLE001 - sorted below: network failures become the offline sentence
        if is_network_error(err):
            raise _not_cached(repo_id, filename, what, hint, reason=str(err)) from None
        if isinstance(err, OSError):
            raise VcAppError(f"Could not download {filename} from {repo_id} ({err}).") from None
        raise


def _not_cached(repo_id: str, filename: str, what: str, hint: str | None, reason: str | None = None) -> VcAppError:
    command = f"'{hint}'" if hint else "'vc-app download' with it"
    why = f" ({reason})" if reason else ""
    return VcAppError(f"The {what} {repo_id} is not in the local cache and the hub cannot be reached{why}: run "
                      f"{command} while online, or pass a local folder that holds {filename}.")


def hub_download(repo_id: str, filename: str, *, revision: str | None = None, what: str = "file",
                 hint: str | None = None) -> Path:
    """Path of `filename` from hub repo `repo_id` at `revision`, downloading it if needed (with progress).

    Args:
        what: what the file is for ("checkpoint", "vocoder"), used in messages.
        hint: the command that downloads it ("vc-app download --vocoder bigvgan:v2-22khz"), used in messages.
    Raises:
        VcAppError: offline and not cached, unknown repo/revision/file, or an invalid id.
    """
    from huggingface_hub import hf_hub_download

    offline = hub_unreachable()
    try:
        with _plain_errors(repo_id, filename, revision, what, hint):
            return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline is not None))
    except VcAppError as err:
        if offline and "not in the local cache" in str(err):
            raise _not_cached(repo_id, filename, what, hint, reason=offline) from None
        raise


def cached_hub_files(repo_id: str, *, revision: str | None = None) -> list[str] | None:
    """File names of `repo_id` at `revision` in the local hub cache (None: that revision is not cached).

    Reads the cache layout `models--org--name/refs/<revision>` -> `snapshots/<commit>/`; never the network.
    """
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    revision = revision or "main"
    commit = revision
    if not COMMIT_HASH.fullmatch(revision):
        ref = repo / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def hub_files(repo_id: str, *, revision: str | None = None, what: str = "file", hint: str | None = None) -> list[str]:
    """File names in hub repo `repo_id` at `revision`: asked of the hub, or read from the cache when offline.

    Raises:
        VcAppError: unknown repo or revision, or offline with nothing cached.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    offline = hub_unreachable()
    if offline is None:
        with _plain_errors(repo_id, "its files", revision, what, hint):
            try:
                return HfApi().list_repo_files(repo_id, revision=revision)
            except (RepositoryNotFoundError, RevisionNotFoundError):
                raise
            except Exception as err:  # noqa: BLE001 - the hub cannot be reached: fall back to the cache
                if not (isinstance(err, (OSError, HfHubHTTPError)) or is_network_error(err)):
                    raise
                offline = str(err)
    cached = cached_hub_files(repo_id, revision=revision)
    if cached is None:
        raise _not_cached(repo_id, "its files", what, hint, reason=offline)
    return cached
