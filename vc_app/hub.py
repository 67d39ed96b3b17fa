"""Downloads from the Hugging Face hub, with errors a user can act on.

Everything fetched from the hub (bundles, vocoder weights) goes through
`hub_download`, which honours `HF_HUB_OFFLINE` and `HF_HUB_CACHE` (read by
huggingface_hub itself) and turns its exceptions into one sentence.
"""

from __future__ import annotations

from pathlib import Path

from vc_app.errors import VcAppError


def hub_download(repo_id: str, filename: str, *, revision: str | None = None, what: str = "file") -> Path:
    """Path of `filename` from hub repo `repo_id` at `revision`, downloading it if needed.

    Args:
        what: what the file is for ("checkpoint", "vocoder"), used in messages.
    Raises:
        VcAppError: offline and not cached, unknown repo/revision/file, or an invalid id.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except HFValidationError:
        raise VcAppError(f"{repo_id!r} is neither an existing folder nor a valid hub repo id.") from None
    except LocalEntryNotFoundError:
        raise VcAppError(
            f"The {what} {repo_id} is not in the local cache and the hub cannot be reached: run "
            f"'vc-app download' with it while online, or pass a local folder that holds {filename}."
        ) from None
    except RepositoryNotFoundError:
        raise VcAppError(f"The hub has no repository {repo_id} (or it is private).") from None
    except RevisionNotFoundError:
        raise VcAppError(f"The hub repository {repo_id} has no revision {revision}.") from None
    except EntryNotFoundError:
        raise VcAppError(f"The hub repository {repo_id} has no file {filename}.") from None
    except OSError as err:
        raise VcAppError(f"Could not download {filename} from {repo_id} ({err}).") from None
