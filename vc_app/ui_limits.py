"""What one request to the web UI may ask for: its limits, with their defaults (`app.py` reads them here).

Torch- and Gradio-free, so `python app.py --help` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass

from vc_app.errors import VcAppError


@dataclass(frozen=True)
class UiLimits:
    """What one web request may ask for.

    Args:
        max_upload_mb: the largest file accepted (also enforced by Gradio at upload).
        max_seconds: the longest clip accepted (source and each target clip).
        concurrency: conversions run at once (None: `default_concurrency` for the device).
        queue_size: requests waiting beyond those; more are turned away with a message.
        keep_outputs_seconds: how long converted files stay in the UI's temp folder.
    """

    max_upload_mb: float = 50.0
    max_seconds: float = 300.0
    concurrency: int | None = None
    queue_size: int = 64
    keep_outputs_seconds: float = 900.0

    def __post_init__(self):
        for name in ("max_upload_mb", "max_seconds", "queue_size", "keep_outputs_seconds"):
            if not getattr(self, name) > 0:
                raise VcAppError(f"The UI limit {name} must be positive, not {getattr(self, name)}.")
        if self.concurrency is not None and self.concurrency < 1:
            raise VcAppError(f"The concurrency limit must be at least 1, not {self.concurrency}.")
