"""Where the noise floor in a conversion's pauses comes from: the model's mels, intervention by intervention.

    python bench/pause_floor.py [--checkpoint DIR] [--corpus ../shared/data/speech] [--threads 1]

Twelve clips with clear pauses from six held-out speakers (VCC 2018: VCC2TF1, VCC2SF3, VCC2TM2, VCC2SM3;
CMU ARCTIC clb; VCTK p226), each self-reconstructed (target = the source itself) and converted to another
held-out speaker (one target clip). Target clips are trimmed of their leading and trailing silence, as
`vc-app convert` and the evaluation's ladder read them; one row reads them untrimmed. No vocoder: the pause
level and tail level of `vc_app.evaluate.levels` are computed on the output mel against the source mel, and
the cost is the self-reconstruction's mean L1 on the source's frames above -40 dB (raw log-mel).

Each row changes one thing at inference, on the same weights:
- where the statistics over time are taken (`ModelConfig.norm_stats`): the content encoder's instance
  norms, the decoder's (its first norm and every `AdaIN`), the speaker encoder's average over time, or all
  three (`norm_stats = "active"`, the model's own path);
- AdaIN's shift (beta) removed on the pause frames, to see how much of the floor it lays there;
- the padding `AdaINVC._pad` adds after the last frame (edge replication) replaced by reflection or by
  silence (the mel of digital silence).

Then the model's own path (its `norm_stats`) with the target clips' recording changed: a stationary noise floor
50 or 30 dB under a target clip's loudest frame added to its mel alone (`vc_app.train.data.add_noise_floor`,
no tilt). If the conversions' pauses rise with it, the speaker vector carries the target recording's floor
into the source's pauses (`data.speaker_noise_db` is meant to train that away; docs/training.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ("vcc2018/VCC2TF1/30001.flac", "vcc2018/VCC2TF1/30003.flac", "vcc2018/VCC2TF1/30005.flac",
           "vcc2018/VCC2SF3/30001.flac", "vcc2018/VCC2SF3/30012.flac", "arctic/clb/arctic_a0002.flac",
           "arctic/clb/arctic_a0009.flac", "arctic/clb/arctic_a0012.flac", "vcc2018/VCC2TM2/30004.flac",
           "vcc2018/VCC2TM2/30006.flac", "vcc2018/VCC2SM3/30001.flac", "vctk_sample/wav48/p226/p226_004.wav")
TARGETS = {  # source speaker -> one clip of another held-out speaker (of the other sex where there is one)
    "VCC2TF1": "vcc2018/VCC2SM3/30020.flac", "VCC2SF3": "vcc2018/VCC2TM2/30020.flac",
    "clb": "vctk_sample/wav48/p226/p226_008.wav", "VCC2TM2": "arctic/clb/arctic_a0020.flac",
    "VCC2SM3": "vcc2018/VCC2TF1/30020.flac", "p226": "vcc2018/VCC2SF3/30020.flac",
}
# row -> (content encoder, decoder, speaker average over active frames; AdaIN's beta off in pauses; _pad mode)
TODAY = (False, False, False, False, "replicate")
ROWS = {
    "today (norm_stats all)": TODAY,
    "content encoder's norms over active frames": (True, False, False, False, "replicate"),
    "decoder's norms (IN, AdaIN) over active frames": (False, True, False, False, "replicate"),
    "both encoders' and decoder's norms": (True, True, False, False, "replicate"),
    "speaker average over active frames": (False, False, True, False, "replicate"),
    "all three = norm_stats active": (True, True, True, False, "replicate"),
    "AdaIN's beta = 0 on pause frames": (False, False, False, True, "replicate"),
    "_pad by reflection": (False, False, False, False, "reflect"),
    "_pad with silence (log floor)": (False, False, False, False, "silence"),
}


def mel_of(path: Path, mel_cfg, *, trim: bool) -> torch.Tensor:
    """A clip as `VoiceConverter` reads it: (1, n_mels, T) raw log-mel (the source padded to whole hops)."""
    from vc_app.audio import prepare_clip
    from vc_app.mel import mel_spectrogram

    wav = prepare_clip(path, mel_cfg.sample_rate, "source", trim=trim)
    wav = F.pad(wav, (0, (-wav.numel()) % mel_cfg.hop_length))
    return mel_spectrogram(wav, mel_cfg).unsqueeze(0)


def measure(source: torch.Tensor, output: torch.Tensor, mel_cfg) -> tuple[float, float, float]:
    """(pause level dB, tail level dB, L1 on active frames) of output against source, both (1, n_mels, T)."""
    from vc_app.evaluate.levels import FLOOR_DB, LOUD_DB, MIN_FRAMES, PAUSE_BELOW_DB, TAIL_SECONDS
    from vc_app.models.adain_vc import frame_levels_db

    src, out = (frame_levels_db(m.double())[0].clamp(min=FLOOR_DB) for m in (source, output))
    pauses = src <= -PAUSE_BELOW_DB
    pause = float(out[pauses].mean() - src[pauses].mean()) if int(pauses.sum()) >= MIN_FRAMES else math.nan
    last = int(torch.nonzero(src > LOUD_DB).max())
    span = slice(last + 1, last + 1 + round(TAIL_SECONDS * mel_cfg.sample_rate / mel_cfg.hop_length))
    tail = float(out[span].mean() - src[span].mean()) if src[span].numel() >= MIN_FRAMES else math.nan
    l1 = float((output[0][:, ~pauses] - source[0][:, ~pauses]).abs().mean())
    return pause, tail, l1


class Intervention:
    """The shipped model's arrows with one thing changed (a `ROWS` entry); the same weights throughout."""

    def __init__(self, model, active_model, row: tuple[bool, bool, bool, bool, str], log_floor: float):
        self.model, self.active_model = model, active_model  # norm_stats "all" and "active", shared weights
        self.log_floor = log_floor  # the raw log-mel of digital silence
        self.encoder, self.decoder, self.speaker_avg, self.beta_off, self.pad = row

    def active(self, mel: torch.Tensor) -> torch.Tensor:
        return self.active_model.active_frames(mel)

    def speaker(self, mel: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.speaker_encoder(m.scale(mel), self.active(mel) if self.speaker_avg else None)

    def convert(self, source: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        m, active = self.model, self.active(source)
        padded = m._pad(source)
        extra = padded.shape[-1] - source.shape[-1]
        if extra and self.pad == "reflect":
            padded = F.pad(source, (0, extra), mode="reflect")
        elif extra and self.pad == "silence":
            padded = F.pad(source, (0, extra), value=math.log(self.log_floor))
        content, _ = m.content_encoder(m.scale(padded), active if self.encoder else None)
        hooks = [a.register_forward_hook(self._beta_off(active)) for a in self._adains()] if self.beta_off else []
        try:
            return m.decode(content, speaker, source.shape[-1], active if self.decoder else None)
        finally:
            for h in hooks:
                h.remove()

    def _adains(self):
        return [b.adain1 for b in self.model.decoder.blocks] + [b.adain2 for b in self.model.decoder.blocks]

    @staticmethod
    def _beta_off(active: torch.Tensor):
        from vc_app.models.blocks import frames_at

        def hook(module, args, output):
            _, beta = module.style(args[1])
            pauses = ~frames_at(active, output.shape[-1])
            return output - beta.unsqueeze(-1) * pauses
        return hook


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a bundle (default: the shipped default model)")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "speech"))
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)
    from vc_app.bundle import default_checkpoint, load_bundle
    from vc_app.models import AdaINVC
    from vc_app.models.adain_vc import frame_levels_db

    bundle = load_bundle(args.checkpoint or default_checkpoint())
    model, mel_cfg = bundle.model, bundle.mel
    active_model = AdaINVC(dataclasses.replace(model.cfg, norm_stats="active")).eval()
    active_model.load_state_dict(model.state_dict())
    corpus = Path(args.corpus)
    speaker_of = {src: next(k for k in TARGETS if k in src) for src in SOURCES}
    sources = {src: mel_of(corpus / src, mel_cfg, trim=False) for src in SOURCES}
    targets = {k: mel_of(corpus / clip, mel_cfg, trim=True) for k, clip in TARGETS.items()}
    untrimmed = {k: mel_of(corpus / clip, mel_cfg, trim=False) for k, clip in TARGETS.items()}
    self_targets = {src: mel_of(corpus / src, mel_cfg, trim=True) for src in SOURCES}
    print(f"checkpoint {bundle.source}; {len(SOURCES)} clips, pause frames "
          f"{sum(int((frame_levels_db(m) <= -40).sum()) for m in sources.values())}; mel domain, no vocoder\n")
    print("| at inference | self pause dB | self tail dB | self L1 (active frames) | conv pause dB | conv tail dB |")
    print("|---|---|---|---|---|---|")
    per_pair: dict[str, list] = {}
    with torch.no_grad():
        for name, row in ROWS.items():
            run = Intervention(model, active_model, row, mel_cfg.log_floor)
            selfs = [measure(m, run.convert(m, run.speaker(self_targets[s])), mel_cfg) for s, m in sources.items()]
            convs = [measure(m, run.convert(m, run.speaker(targets[speaker_of[s]])), mel_cfg)
                     for s, m in sources.items()]
            per_pair[name] = convs
            print(f"| {name} | {_mean(selfs, 0):+.1f} | {_mean(selfs, 1):+.1f} | {_mean(selfs, 2):.3f} | "
                  f"{_mean(convs, 0):+.1f} | {_mean(convs, 1):+.1f} |")
        run = Intervention(model, active_model, TODAY, mel_cfg.log_floor)
        selfs = [measure(m, run.convert(m, run.speaker(m)), mel_cfg) for m in sources.values()]
        convs = [measure(m, run.convert(m, run.speaker(untrimmed[speaker_of[s]])), mel_cfg) for s, m in sources.items()]
        print(f"| today, target clips untrimmed | {_mean(selfs, 0):+.1f} | {_mean(selfs, 1):+.1f} | "
              f"{_mean(selfs, 2):.3f} | {_mean(convs, 0):+.1f} | {_mean(convs, 1):+.1f} |")
        own = f"its own path (norm_stats {model.cfg.norm_stats})"
        for floor in (None, -50.0, -30.0):
            chosen = targets if floor is None else {k: _with_floor(t, floor, mel_cfg) for k, t in targets.items()}
            convs = [measure(m, model.convert(m, model.speaker(chosen[speaker_of[s]])), mel_cfg)
                     for s, m in sources.items()]
            name = own if floor is None else f"{own}, a {floor:g} dB noise floor added to the target clips"
            print(f"| {name} | | | | {_mean(convs, 0):+.1f} | {_mean(convs, 1):+.1f} |")
        same = torch.equal(active_model.convert(sources[SOURCES[0]], active_model.speaker(sources[SOURCES[0]])),
                           Intervention(model, active_model, ROWS["all three = norm_stats active"],
                                        mel_cfg.log_floor).convert(
                               sources[SOURCES[0]], active_model.speaker(sources[SOURCES[0]])))
    print(f"\n`norm_stats active` through AdaINVC.convert equals the 'all three' row bit for bit: {same}")
    print("\nThe last 12 frames of the clips (mean level, dB from the loudest frame): source, self-reconstruction\n")
    for name, m in (("source", None), ("today", model), ("norm_stats active", active_model)):
        with torch.no_grad():
            ends = [frame_levels_db(x if m is None else m.convert(x, m.speaker(self_targets[s])))[0, -12:]
                    for s, x in sources.items()]
        print(f"{name:>18}: " + " ".join(f"{v:.1f}" for v in torch.stack(ends).clamp(min=-80).mean(0).tolist()))
    print("\nConversions: the source's and the target clip's own pause floor (mean level of their frames "
          "<= -40 dB) and the conversion's pause level, today and with norm_stats active\n")
    print("| source | its floor dB | target | target's floor dB | conv pause today | conv pause active |")
    print("|---|---|---|---|---|---|")
    for i, (src, m) in enumerate(sources.items()):
        tgt = TARGETS[speaker_of[src]]
        print(f"| {src} | {_floor(m):.1f} | {tgt} | {_floor(untrimmed[speaker_of[src]]):.1f} | "
              f"{per_pair['today (norm_stats all)'][i][0]:+.1f} | "
              f"{per_pair['all three = norm_stats active'][i][0]:+.1f} |")


def _with_floor(mel: torch.Tensor, level_db: float, mel_cfg) -> torch.Tensor:
    """(1, n_mels, T) raw log-mel with stationary noise `level_db` under its loudest frame (the same draw each run)."""
    import numpy as np

    from vc_app.mel import band_centres
    from vc_app.train.data import add_noise_floor

    noisy = add_noise_floor(mel[0].numpy(), level_db, 0.0, band_centres(mel_cfg), np.random.default_rng(0))
    return torch.from_numpy(noisy).unsqueeze(0)


def _floor(mel: torch.Tensor) -> float:
    from vc_app.models.adain_vc import frame_levels_db

    level = frame_levels_db(mel.double())[0].clamp(min=-80)
    return float(level[level <= -40].mean())


def _mean(rows: list[tuple[float, float, float]], i: int) -> float:
    values = [r[i] for r in rows if not math.isnan(r[i])]
    return statistics.fmean(values) if values else math.nan


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
