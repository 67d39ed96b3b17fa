"""Live conversion: audio blocks in, converted blocks out, at a constant latency.

`StreamingConverter` (what `VoiceConverter.stream(voice)` returns) converts one block of
`StreamConfig.block_frames` mel frames at a time. Every block is converted again with the
`context_frames` before it and `lookahead_frames` after it (what the convolutions need to see ahead). The
content encoder's instance norms and the decoder's AdaIN layers take statistics over time: offline over
the whole clip, here over the window and the windows before it (`RunningStats`, time constant
`stats_frames`), so a window's few words are not renormalised on their own. The vocoder voices the block with
`vocoder_context_frames` of converted mel before it and the look-ahead after it; the vocoded samples past
the block's end are kept and cross-faded (raised cosine, `crossfade_samples`) into the next block, so the
blocks join without clicks. The speaker vector is computed once, before the stream starts.

    input samples ─┬─ history: the last context + block + look-ahead frames of input
                   └ mel_spectrogram(history) → AdaINVC.convert (running statistics over time)
                     → vocoder(block ± context) → cross-fade with the previous block's tail → output block

Timeline: after block k has been pushed (input up to frame n = (k + 1) * block_frames), the block of
converted frames [n - lookahead - block, n - lookahead) comes out. So an input sample leaves
(block_frames + lookahead_frames) * hop samples later: `StreamingConverter.latency`.

`LiveEngine` runs a stream against a clock, as a sound card would: the audio side feeds input and reads
output in small quanta; a worker converts each whole block and has until `compute_share` of a block after
the block's end to deliver it. A block that misses that deadline, or that arrives while the worker is
still busy, is **dropped** (its slot plays the previous block's tail faded out, then silence) and counted:
the latency never grows. `LiveEngine.latency` is the stream's plus that compute allowance.

For measuring what streaming costs against the offline conversion (`bench/live_quality.py`): `stream_mel` is
the stream's converted mel placed frame for frame under the source (the model's half alone, to vocode in one
pass), and `join_excess_db` says how much rougher an output is at the block joins than elsewhere.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from vc_app.config import MelConfig, StreamConfig
from vc_app.errors import VcAppError
from vc_app.mel import mel_spectrogram
from vc_app.models import AdaINVC
from vc_app.models.blocks import RunningStats
from vc_app.vocoders import Vocoder


def block_frames_for(block_ms: float, mel: MelConfig) -> int:
    """The whole number of frames nearest to `block_ms` milliseconds (at least one)."""
    return max(1, round(block_ms / 1000 * mel.sample_rate / mel.hop_length))


class StreamingConverter:
    """Converts a live signal block by block; built by `VoiceConverter.stream(voice)`.

    Args:
        model: the AdaIN-VC model (eval mode); vocoder: its vocoder; speaker: (c_speaker,) the target's vector.
        mel: the mel recipe; config: the block, context and look-ahead sizes.
    Attributes:
        block_samples: samples per block; latency: seconds from an input sample to its conversion in the
            output of `push`.
    """

    def __init__(self, model: AdaINVC, vocoder: Vocoder, speaker: torch.Tensor, mel: MelConfig,
                 config: StreamConfig | None = None):
        self.config = config = config or StreamConfig()
        config.check(mel)
        self.model, self.vocoder, self.mel_cfg = model, vocoder, mel
        self.device = next(model.parameters()).device
        self.speaker = speaker.reshape(1, -1).to(self.device)
        self.sample_rate, self.hop = mel.sample_rate, mel.hop_length
        self.block_samples = config.block_frames * self.hop
        self.window_samples = (config.context_frames + config.block_frames + config.lookahead_frames) * self.hop
        self.latency_samples = (config.block_frames + config.lookahead_frames) * self.hop
        self.latency = self.latency_samples / self.sample_rate
        ramp = torch.arange(config.crossfade_samples, dtype=torch.float32) + 0.5
        self.fade_in = 0.5 - 0.5 * torch.cos(math.pi * ramp / max(config.crossfade_samples, 1))  # (crossfade,)
        self.running = (RunningStats(config.stats_frames, config.block_frames, self.window_samples // self.hop)
                        if config.stats_frames else None)
        self.reset()

    def reset(self) -> None:
        """Forget everything heard so far: the next push starts a new stream."""
        self.history = torch.zeros(0)  # (<= window_samples,) the input the next window is made from
        self.tail: torch.Tensor | None = None  # (crossfade,) the last block's vocoded samples past its end
        self.pending = torch.zeros(0)  # input short of a whole block
        self.queued = torch.zeros(self.block_samples)  # output not returned yet; one block of it is the latency
        if self.running is not None:
            self.running.reset()

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Feed input, get as many output samples back; whole blocks are converted as they fill.

        Args:
            block: (N,) float waveform at the model's rate, any N.
        Returns:
            (N,) float32: the conversion, `latency` seconds behind the input (silence at first).
        """
        self.pending = torch.cat([self.pending, block.detach().float().flatten().cpu()])
        outputs = [self.queued]
        while self.pending.numel() >= self.block_samples:
            outputs.append(self.process(self.pending[:self.block_samples]))
            self.pending = self.pending[self.block_samples:]
        queued = torch.cat(outputs)
        n = block.numel()
        self.queued = queued[n:]
        return queued[:n]

    @torch.inference_mode()
    def convert_window(self, block: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Hear one whole block and convert the window it closes (the model's half of `process`).

        Args:
            block: (block_samples,) the next input.
        Returns:
            (converted, end): the converted mel (1, n_mels, n) of the last n <= context + block + look-ahead
            frames heard (statistics over time: this window's folded into the stream's running ones), and the
            block's frames are [end - block_frames, end) of it.
        """
        self.history = torch.cat([self.history, block.float()])[-self.window_samples:]
        n = self.history.numel() // self.hop
        mel = mel_spectrogram(self.history.to(self.device), self.mel_cfg).unsqueeze(0)  # (1, n_mels, n)
        return self.model.convert(mel, self.speaker, self.running), n - self.config.lookahead_frames

    @torch.inference_mode()
    def process(self, block: torch.Tensor) -> torch.Tensor:
        """Convert one whole block. block: (block_samples,) -> (block_samples,): the converted frames
        [n - lookahead - block, n - lookahead), n the input frames heard so far."""
        cfg, hop = self.config, self.hop
        converted, end = self.convert_window(block)
        first = max(end - cfg.block_frames - cfg.vocoder_context_frames, 0)
        wav = self.vocoder(converted[..., first:])[0].float().cpu()  # samples of frames [first, n)
        start = (end - cfg.block_frames - first) * hop  # the block's first sample in wav (negative at first)
        piece = wav[max(start, 0):start + self.block_samples + cfg.crossfade_samples]
        piece = torch.cat([torch.zeros(max(-start, 0)), piece])  # (block_samples + crossfade,)
        out = piece[:self.block_samples].clone()
        x = cfg.crossfade_samples
        if self.tail is not None and x:
            out[:x] = self.tail * (1 - self.fade_in) + out[:x] * self.fade_in
        self.tail = piece[self.block_samples:self.block_samples + x]
        return out.clamp(-1.0, 1.0)

    def skip(self, block: torch.Tensor) -> torch.Tensor:
        """Hear a block without converting it (a dropped block). block: (block_samples,) -> (block_samples,):
        the previous block's tail faded out, then silence, so a drop is a gap, not a click."""
        self.history = torch.cat([self.history, block.float()])[-self.window_samples:]
        out = torch.zeros(self.block_samples)
        if self.tail is not None and self.tail.numel():
            out[:self.tail.numel()] = self.tail * (1 - self.fade_in)
        self.tail = None
        return out


@dataclass
class LiveStats:
    """What a live run shows: blocks converted and dropped, and compute per block in seconds."""

    blocks: int = 0
    dropped: int = 0
    compute: list[float] = field(default_factory=list)

    def load(self, block_seconds: float, last: int = 0) -> tuple[float, float]:
        """(mean, max) compute per block as a share of a block's duration, over the `last` blocks (0: all)."""
        times = self.compute[-last:] if last else self.compute
        if not times:
            return 0.0, 0.0
        return sum(times) / len(times) / block_seconds, max(times) / block_seconds


class LiveEngine:
    """A `StreamingConverter` against a clock: the audio side calls `feed` and `read` with the same number
    of samples every quantum (the callback of a sound card, or a simulation), in that order.

    Output position p is what the speaker plays at time p (samples). Block k's input ends at
    (k + 1) * block_samples; its conversion plays from `deadline` samples later. With `threaded`, a worker
    thread converts while the audio side goes on, and a block not ready at its slot, or arriving while the
    worker is busy, is dropped and counted; without it, `feed` converts at once and nothing is dropped (a
    simulation as fast as possible).

    Args:
        stream: the converter; threaded: convert in a worker thread (live) or inline (offline simulation).
    """

    def __init__(self, stream: StreamingConverter, *, threaded: bool = True):
        self.stream, self.threaded = stream, threaded
        cfg, bs = stream.config, stream.block_samples
        self.quantum = bs // cfg.quanta_per_block
        self.deadline = math.ceil(cfg.compute_share * cfg.quanta_per_block - 1e-9) * self.quantum
        self.latency_samples = stream.latency_samples + self.deadline
        self.latency = self.latency_samples / stream.sample_rate
        self.block_seconds = bs / stream.sample_rate
        self.stats = LiveStats()
        self._lock = threading.Condition()
        self._inbox: list[tuple[int, torch.Tensor]] = []
        self._ready: dict[int, torch.Tensor] = {}  # block index -> its output, until played
        self._late: set[int] = set()  # blocks whose slot began before they were ready
        self._pending = torch.zeros(0)
        self._fed_blocks = 0
        self._played = self.quantum  # output position: a read after the feed of time T plays [T, T + quantum)
        self._closed = False
        self._worker: threading.Thread | None = None
        if threaded:
            self._worker = threading.Thread(target=self._work, name="vc-app live conversion", daemon=True)
            self._worker.start()

    # -- the audio side -----------------------------------------------------------
    def feed(self, samples: torch.Tensor) -> None:
        """Input heard during the last quantum: (N,) float at the model's rate."""
        self._pending = torch.cat([self._pending, samples.float().flatten()])
        bs = self.stream.block_samples
        while self._pending.numel() >= bs:
            block, self._pending = self._pending[:bs].clone(), self._pending[bs:]
            index, self._fed_blocks = self._fed_blocks, self._fed_blocks + 1
            if not self.threaded:
                self._convert(index, block)
                continue
            with self._lock:
                self._inbox.append((index, block))
                self._lock.notify()

    def read(self, n: int) -> torch.Tensor:
        """What the speaker plays next: the n samples after the input fed so far, (n,) float32 (silence
        before the first block and where a block was dropped). Call it after `feed` in each quantum."""
        bs, out = self.stream.block_samples, torch.zeros(n)
        pos, stop = self._played, self._played + n
        with self._lock:
            while pos < stop:
                rel = pos - bs - self.deadline  # position inside the slots: slot k starts at (k+1)*bs + deadline
                k, offset = rel // bs, rel % bs
                take = min(bs - offset, stop - pos)
                if k >= 0:
                    block = self._ready.get(k)
                    if block is None and k not in self._late:
                        self._late.add(k)  # its slot has begun without it: it will not be played
                        self.stats.dropped += 1
                    if block is not None:
                        out[pos - self._played:pos - self._played + take] = block[offset:offset + take]
                        if offset + take == bs:
                            del self._ready[k]
                pos += take
            self._played = stop
        return out

    def close(self) -> None:
        """Stop the worker (it finishes the block in hand); safe to call twice."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10)

    # -- the worker -----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._inbox and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                waiting, self._inbox = self._inbox, []
            for index, block in waiting[:-1]:  # the worker fell behind: hear these, convert only the newest
                self._skip(index, block)
            self._convert(*waiting[-1])

    def _skip(self, index: int, block: torch.Tensor) -> None:
        out = self.stream.skip(block)
        with self._lock:
            if index not in self._late:
                self._ready[index] = out
                self.stats.dropped += 1
                self._late.add(index)

    def _convert(self, index: int, block: torch.Tensor) -> None:
        started = time.perf_counter()
        out = self.stream.process(block)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.stats.blocks += 1
            self.stats.compute.append(elapsed)
            if index not in self._late:
                self._ready[index] = out


def simulate(engine: LiveEngine, source: torch.Tensor, *, realtime: bool = True) -> torch.Tensor:
    """Play `source` into `engine` as a sound card would, and return what the speaker plays.

    Args:
        source: (N,) float at the model's rate.
        realtime: feed one quantum per quantum of wall-clock time (compute that falls behind drops blocks);
            otherwise as fast as possible (with an unthreaded engine nothing is dropped).
    Returns:
        (N + latency_samples,): output sample n is what leaves the speaker at time n, so the whole
        conversion of the source is heard.
    """
    q = engine.quantum
    total = source.numel() + engine.latency_samples
    padded = torch.cat([source.float().flatten(), torch.zeros(-(-total // q) * q - source.numel())])
    out = [torch.zeros(q)]  # the first quantum plays while the first input is being heard
    start = time.perf_counter()
    for i in range(0, padded.numel(), q):
        if realtime:  # the callback of quantum i runs when its input has been heard
            time.sleep(max(0.0, start + (i + q) / engine.stream.sample_rate - time.perf_counter()))
        engine.feed(padded[i:i + q])
        out.append(engine.read(q))
    return torch.cat(out)[:total]


LIVE_VOCODERS = ("hifigan:universal", "griffinlim", "griffinlim:16")  # best first: live picks the first that keeps up
KEEPS_UP_SHARE = 0.7  # a vocoder keeps up when a block's compute takes at most this share of the block


def pick_live_stream(make_stream: Callable[[str], StreamingConverter | None], specs: Sequence[str] | None = None
                     ) -> tuple[str, float, StreamingConverter, list[tuple[str, float]]]:
    """The stream with the first vocoder of `specs` (best first) that keeps up here, else the fastest of them:
    each one's compute per block is measured (`measure_compute`) until one needs at most `KEEPS_UP_SHARE`.

    Args:
        make_stream: the stream with the vocoder `spec`, or None where that vocoder cannot be loaded here.
        specs: the vocoders to try, best first (None: `LIVE_VOCODERS`).
    Returns:
        (spec, its compute as a share of a block, the stream, [(spec, share)] of every vocoder timed).
    """
    specs = LIVE_VOCODERS if specs is None else specs
    tried: list[tuple[str, float, StreamingConverter]] = []
    for spec in specs:
        stream = make_stream(spec)
        if stream is None:
            continue
        tried.append((spec, measure_compute(stream) / (stream.block_samples / stream.sample_rate), stream))
        if tried[-1][1] <= KEEPS_UP_SHARE:
            break
    if not tried:
        raise VcAppError(f"None of the live vocoders ({', '.join(specs)}) can be loaded here.")
    spec, share, stream = tried[-1] if tried[-1][1] <= KEEPS_UP_SHARE else min(tried, key=lambda t: t[1])
    return spec, share, stream, [(s, x) for s, x, _ in tried]


def describe_pick(spec: str, share: float, tried: Sequence[tuple[str, float]], block_seconds: float) -> str:
    """What `pick_live_stream` chose and why, in words: "vocoder griffinlim:32, 58% of each 93 ms block here (...)"."""
    slower = ", ".join(f"{s} needs {x:.0%}" for s, x in tried if s != spec)
    return (f"vocoder {spec}, {share:.0%} of each {block_seconds * 1000:.0f} ms block here"
            + (f" ({slower}, more than {KEEPS_UP_SHARE:.0%})" if slower else "")
            + ("; it does not keep up either: blocks will be dropped" if share > KEEPS_UP_SHARE else ""))


def measure_compute(stream: StreamingConverter, blocks: int = 6, seed: int = 0) -> float:
    """Seconds of compute per block: the median of `blocks` blocks of quiet noise after one warm-up block
    (compute does not depend on what is heard). The stream is reset afterwards."""
    noise = 0.05 * torch.randn((blocks + 1) * stream.block_samples, generator=torch.Generator().manual_seed(seed))
    times = []
    for i in range(blocks + 1):
        started = time.perf_counter()
        stream.process(noise[i * stream.block_samples:(i + 1) * stream.block_samples])
        times.append(time.perf_counter() - started)
    stream.reset()
    return sorted(times[1:])[len(times[1:]) // 2]


@torch.inference_mode()
def stream_mel(stream: StreamingConverter, source: torch.Tensor) -> torch.Tensor:
    """The converted mel of `source` as the stream's model makes it, block by block, each block's frames at
    their place in the source: what the stream's vocoder voices, without its block-wise voicing. Vocoded in
    one pass, it measures what the context and the look-ahead cost apart from the joins. The stream is reset.

    Args:
        source: (N,) float at the model's rate; it is followed by silence until every frame has come out.
    Returns:
        (1, n_mels, N // hop): frame j is the conversion of source frame j.
    """
    stream.reset()
    cfg, bs = stream.config, stream.block_samples
    frames = source.numel() // stream.hop
    total = source.numel() + (cfg.lookahead_frames + cfg.block_frames) * stream.hop
    padded = torch.cat([source.float().flatten(), torch.zeros(-(-total // bs) * bs - source.numel())])
    pieces = []
    for i in range(0, padded.numel(), bs):
        converted, end = stream.convert_window(padded[i:i + bs])
        # the block is source frames [k * block - lookahead, (k + 1) * block - lookahead); until the window is
        # full it starts at source frame 0, so window frames below 0 are before the source (silence in a stream)
        pieces.append(converted[..., max(end - cfg.block_frames, 0):max(end, 0)].float().cpu())
    stream.reset()
    return torch.cat(pieces, dim=-1)[..., :frames]


def join_excess_db(wav: torch.Tensor, block: int, first: int) -> float:
    """How much rougher `wav` is around block joins than elsewhere: its second difference's power (a click is
    broadband) in 128 samples around each join at first, first + block, ... against all 128-sample windows,
    in dB (median over joins against the median over windows). About 0 for seamless joins."""
    d2 = wav.diff(n=2).pow(2)
    windows = d2[: d2.numel() // 128 * 128].reshape(-1, 128).mean(1)
    joins = [d2[j - 64:j + 64].mean() for j in range(first, d2.numel() - 64, block)]
    return float(10 * torch.log10(torch.stack(joins).median() / windows.median()))


def mel_lag(heard: torch.Tensor, reference: torch.Tensor, mel: MelConfig, *, longest: int,
            step: int = 32, skip_frames: int = 0) -> tuple[int, float]:
    """How many samples `heard` lags `reference`, found by cross-correlating their log-mels.

    Waveforms of two conversions of the same words differ in phase (Griffin-Lim starts from a random one),
    so their spectra are compared: every lag in [0, longest] in steps of `step` samples, the lag whose
    log-mels correlate best.

    Args:
        heard: (N,) what a listener heard (a simulation's output); reference: (M,) the offline conversion.
        skip_frames: frames of the reference left out at its start (where the stream had no context yet).
    Returns:
        (lag in samples, correlation of the log-mels at that lag).
    """
    ref = mel_spectrogram(reference.float(), mel)[:, skip_frames:]
    best = (0, -2.0)
    for offset in range(0, mel.hop_length, step):
        shifted = mel_spectrogram(heard.float()[offset:], mel)
        for frames in range(0, (longest - offset) // mel.hop_length + 1):
            a = shifted[:, frames + skip_frames:]
            n = min(a.shape[1], ref.shape[1])
            if n < 2:
                continue
            r = float(torch.corrcoef(torch.stack([a[:, :n].flatten(), ref[:, :n].flatten()]))[0, 1])
            if r > best[1]:
                best = (frames * mel.hop_length + offset, r)
    return best
