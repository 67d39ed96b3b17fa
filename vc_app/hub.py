"""Downloads from the Hugging Face hub, with errors a user can act on.

Everything fetched from the hub (bundles, vocoder weights) goes through
`hub_download`, which honours `HF_HUB_OFFLINE` and `HF_HUB_CACHE` (read by
huggingface_hub itself) and turns its exceptions into one sentence.
`hub_files` lists a repo's files (from the hub, or from the local cache when
the hub cannot be reached), for repos whose file names are not fixed.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from vc_app.errors import VcAppError

COMMIT_HASH = re.compile(r"[0-9a-f]{40}")


@contextlib.contextmanager
def _plain_errors(repo_id: str, filename: str, revision: str | None, what: str, hint: str | None):
    """Turn huggingface_hub's exceptions into one `VcAppError` sentence."""
    from huggingface_hub.errors import (EntryNotFoundError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

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
    except OSError as err:
        raise VcAppError(f"Could not download {filename} from {repo_id} ({err}).") from None


def _not_cached(repo_id: str, filename: str, what: str, hint: str | None) -> VcAppError:
    command = f"'{hint}'" if hint else "'vc-app download' with it"
    return VcAppError(f"The {what} {repo_id} is not in the local cache and the hub cannot be reached: run "
                      f"{command} while online, or pass a local folder that holds {filename}.")


def hub_download(repo_id: str, filename: str, *, revision: str | None = None, what: str = "file",
                 hint: str | None = None) -> Path:
    """Path of `filename` from hub repo `repo_id` at `revision`, downloading it if needed (with progress).

    Args:
        what: what the file is for ("checkpoint", "vocoder"), used in messages.
        hint: the command that downloads it ("vc-app download --vocoder bigvgan"), used in messages.
    Raises:
        VcAppError: offline and not cached, unknown repo/revision/file, or an invalid id.
    """
    from huggingface_hub import hf_hub_download

    with _plain_errors(repo_id, filename, revision, what, hint):
        return Path(hf_hub_download(repo_id, filename, revision=revision))


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
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if not constants.HF_HUB_OFFLINE:
        with _plain_errors(repo_id, "its files", revision, what, hint):
            try:
                return HfApi().list_repo_files(repo_id, revision=revision)
            except (RepositoryNotFoundError, RevisionNotFoundError):
                raise
            except (OSError, HfHubHTTPError, ConnectionError, TimeoutError) + _transport_errors():
                pass  # the hub cannot be reached: fall back to the cache
    cached = cached_hub_files(repo_id, revision=revision)
    if cached is None:
        raise _not_cached(repo_id, "its files", what, hint)
    return cached


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network errors of the HTTP client huggingface_hub uses (httpx in 1.x and later), if installed."""
    try:
        import httpx
    except ImportError:
        return ()
    return (httpx.TransportError,)
