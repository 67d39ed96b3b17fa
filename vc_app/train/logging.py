"""Training logs: a line on stdout, `metrics.jsonl` always, TensorBoard when the `train` extra is installed.

Every scalar keeps the name of its loss term or metric (`train/rec`, `valid/cls_acc`, ...). Samples: a mel
image and a Griffin-Lim audio clip of a fixed validation conversion (content of one validation segment in
the voice of another).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vc_app.config import MelConfig


class TrainLogger:
    def __init__(self, out_dir: str | Path, *, enabled: bool = True, log=print):
        self.enabled, self.log = enabled, log
        self.out_dir = Path(out_dir)
        self.writer = None
        self.jsonl = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(self.out_dir / "metrics.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log("TensorBoard is not installed (pip install -e '.[train]'); logging to metrics.jsonl only.")
        else:
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def scalars(self, split: str, values: dict[str, float], step: int) -> None:
        if self.jsonl is None:  # not enabled (a rank other than 0)
            return
        self.jsonl.write(json.dumps({"split": split, "step": step, **values}) + "\n")
        self.jsonl.flush()
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{split}/{key}", value, step)
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if not k.startswith("weight_"))
        self.log(f"[{split} {step}] {shown}")

    @torch.no_grad()
    def sample(self, model, batches, mel_cfg: MelConfig, step: int) -> None:
        """Convert validation segment 0's content into the voice of the first segment of another speaker
        (segment 1 when all share one); log the three mel images and the converted audio."""
        if not self.enabled or self.writer is None or not batches or batches[0][0].shape[0] < 2:
            return
        from vc_app.vocoders.griffinlim import GriffinLim

        model.eval()
        mels, speakers = batches[0]
        others = torch.nonzero(speakers != speakers[0]).flatten()
        target = int(others[0]) if len(others) else 1
        mels = torch.stack([mels[0], mels[target]])
        converted = model.convert(mels[:1], model.speaker(mels[1:2]))
        model.train()
        for name, mel in (("source", mels[0]), ("target", mels[1]), ("converted", converted[0])):
            image = (mel - mel.min()) / (mel.max() - mel.min() + 1e-8)
            self.writer.add_image(f"sample/{name}_mel", image.flip(0).cpu(), step, dataformats="HW")
        wav = GriffinLim(mel_cfg)(converted.float().cpu())[0]
        self.writer.add_audio("sample/converted", wav, step, sample_rate=mel_cfg.sample_rate)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
