"""Griffin-Lim: the vocoder that needs no weights (always available, offline default).

Mel -> linear magnitude by the least-squares (pseudo-) inverse of the mel
filterbank, then torchaudio's Griffin-Lim with momentum (Perraudin et al.
2013). Our mel frames are centred `hop / 2` samples later than torch's
`center=True` frames, so the result is shifted to line up with the source.
"""

from __future__ import annotations

import threading

import torch

from vc_app.config import MelConfig
from vc_app.mel import mel_filterbank


class GriffinLim:
    def __init__(self, mel: MelConfig, *, n_iter: int = 32, momentum: float = 0.99, seed: int = 0):
        if n_iter < 1:
            raise ValueError("Griffin-Lim needs at least one iteration")
        self.mel_cfg, self.n_iter, self.momentum, self.seed = mel, n_iter, momentum, seed
        self.name = f"griffinlim:{n_iter}"
        self.sample_rate, self.hop_length, self.n_mels = mel.sample_rate, mel.hop_length, mel.n_mels
        basis = mel_filterbank(mel.sample_rate, mel.n_fft, mel.n_mels, mel.f_min, mel.f_max)
        self.inverse_basis = torch.linalg.pinv(basis.double()).float()  # (n_fft//2+1, n_mels)
        self.window = torch.hann_window(mel.win_length)
        # torchaudio draws the random initial phase from the global generator: seeding it must not
        # interleave between threads (the web UI converts several requests at once)
        self._rng_lock = threading.Lock()
        # frame t of our recipe is centred at t*hop + n_fft/2 - (n_fft-hop)/2 = t*hop + hop/2
        self.shift = mel.n_fft // 2 - (mel.n_fft - mel.hop_length) // 2

    def magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) log-mel -> linear magnitude (B, n_fft//2+1, T), non-negative."""
        return torch.clamp(self.inverse_basis.to(mel.device) @ torch.exp(mel), min=0.0)

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) -> wav (B, T * hop), deterministic for a given seed."""
        import torchaudio.functional as AF

        cfg = self.mel_cfg
        n_frames = mel.shape[-1]
        length = n_frames * cfg.hop_length
        with self._rng_lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            wav = AF.griffinlim(self.magnitude(mel.float()), self.window.to(mel.device), cfg.n_fft, cfg.hop_length,
                                cfg.win_length, power=1.0, n_iter=self.n_iter, momentum=self.momentum,
                                length=(n_frames - 1) * cfg.hop_length, rand_init=True)
        wav = torch.nn.functional.pad(wav, (self.shift, length))[..., :length]
        return wav.clamp(-1.0, 1.0)
