"""Batch conversion of folders and manifests: resumable, atomic, shardable.

A run is a list of `Job`s (source, target clips, output). Finished outputs are
skipped, so a run that was killed finishes the rest when started again; every
output is written to a temp name, fsynced and renamed, so no partial file ever
carries a final name. Clips are decoded and checked in worker processes while
the main process runs the model. A failed input is recorded with its reason in
`OUT_DIR/failures.csv` and the run goes on.
"""

from __future__ import annotations

import fnmatch
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vc_app.corpus import AUDIO_EXTENSIONS, find_audio_files
from vc_app.errors import VcAppError
from vc_app.pairs import read_target_csv, split_targets
from vc_app.paths import TEMP_SUFFIX, write_csv
from vc_app.targets import load_target

if TYPE_CHECKING:
    from vc_app.converter import VoiceConverter
    from vc_app.voice import Voice

FAILURES_FILE = "failures.csv"
FORMATS = {"wav": ".wav", "flac": ".flac", "ogg": ".ogg"}  # what write_audio writes (paths.OUTPUT_FORMATS)


@dataclass(frozen=True)
class Job:
    """One conversion: `source` in the voice of `targets` (clips of one speaker, or one .voice file), written to
    `output`; `name` is its stable id."""

    source: Path
    targets: tuple[Path, ...]
    output: Path
    name: str
    line: int | None = None  # the manifest line it came from (None in folder mode)
    given: str = ""  # its source as the manifest wrote it ("" in folder mode)


@dataclass
class BatchResult:
    converted: int = 0
    skipped: int = 0
    failures: list[tuple[Job, str]] = field(default_factory=list)  # (job, reason)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        return f"{self.converted} converted, {self.skipped} skipped, {self.failed} failed"


# -- planning --------------------------------------------------------------------------
def _check_dirs(input_dir: Path, output_dir: Path) -> None:
    inp, out = input_dir.resolve(), output_dir.resolve()
    if inp == out:
        raise VcAppError("The output folder is the input folder; choose another output folder.")
    if inp in out.parents:
        raise VcAppError(f"The output folder {output_dir} is inside the input folder; choose one outside it "
                         "(vc-app batch never writes inside the input folder).")


def plan_folder(input_dir: str | os.PathLike, targets: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                *, glob: str | None = None, fmt: str = "wav", warn: Callable[[str], None] | None = None) -> list[Job]:
    """Every audio file under `input_dir` (recursively, symlinks followed, filtered by `glob`), mirrored
    under `output_dir`; `warn` hears of each link that had to be skipped (a loop, a broken link)."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise VcAppError(f"Input folder {input_dir} does not exist.")
    if not targets:
        raise VcAppError("Give at least one --target clip.")
    _check_dirs(input_dir, output_dir)
    sources = [p for p in find_audio_files(input_dir, AUDIO_EXTENSIONS, warn)
               if glob is None or fnmatch.fnmatch(p.relative_to(input_dir).as_posix(), glob)]
    if not sources:
        raise VcAppError(f"No audio files under {input_dir}" + (f" match {glob!r}." if glob else "."))
    rels = [p.relative_to(input_dir) for p in sources]
    outputs = _mirror(rels, fmt)
    target_paths = tuple(Path(t) for t in targets)
    return [Job(src, target_paths, output_dir / out, rel.as_posix()) for src, rel, out in zip(sources, rels, outputs)]


def _mirror(rels: list[Path], fmt: str) -> list[Path]:
    """Output paths relative to OUT_DIR: same folders and stem, the new extension; the input's extension is
    kept in the name when two inputs would otherwise collide (a.wav and a.flac -> a.wav.wav, a.flac.wav)."""
    ext = FORMATS[fmt]
    plain = [rel.with_suffix(ext) for rel in rels]
    clashes = {p for p in plain if plain.count(p) > 1}
    return [rel.with_name(rel.name + ext) if p in clashes else p for rel, p in zip(rels, plain)]


def plan_manifest(manifest: str | os.PathLike, output_dir: str | os.PathLike, *, fmt: str = "wav") -> list[Job]:
    """Rows `source,target[,output]` of a CSV with a header; `target` may list clips separated by ';', or
    name one .voice file.

    Relative paths are relative to the manifest's folder (inputs) and to `output_dir` (outputs); the
    default output is `<source stem>_as_<first target stem>.<fmt>`.
    """
    manifest, output_dir = Path(manifest), Path(output_dir)
    base = manifest.resolve().parent
    jobs: list[Job] = []
    seen: dict[Path, int] = {}
    for line, row in read_target_csv(manifest, what="Manifest"):
        source = _under(base, row["source"])
        targets = tuple(_under(base, t) for t in split_targets(row["target"]))
        name = row.get("output") or f"{source.stem}_as_{targets[0].stem}{FORMATS[fmt]}"
        output = _under(output_dir, name)
        if output in seen:
            raise VcAppError(f"Lines {seen[output]} and {line} of {manifest.name} both write {name}; "
                             "give them different output names.")
        seen[output] = line
        jobs.append(Job(source, targets, output, name, line=line, given=row["source"]))
    return jobs


def _under(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise VcAppError(f"--shard must look like I/N (e.g. 0/4), not {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise VcAppError(f"--shard {text}: I must be between 0 and N-1.")
    return index, count


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """A deterministic 1/count of the jobs, chosen by a stable hash of each job's name (no coordination)."""
    return [j for j in jobs if zlib.crc32(j.name.encode()) % count == index]


# -- running ------------------------------------------------------------------------------
def _decode(source: str, sample_rate: int, max_samples: int) -> tuple[object, int, str]:
    """Worker: (raw waveform as numpy, or None for a long file to stream; source rate; error or '')."""
    from vc_app.audio import audio_info, check_clip, load_audio

    try:
        info = audio_info(source)
        if info.frames * sample_rate / info.samplerate > max_samples:
            return None, info.samplerate, ""
        wav = load_audio(source, sample_rate)
        check_clip(wav, sample_rate, f"source clip {Path(source).name}", trim=False)
        return wav.numpy(), info.samplerate, ""
    except VcAppError as err:
        return None, 0, str(err)


def _one_thread() -> None:
    """Worker set-up: decoding uses one core, the cores left are the model's."""
    import torch

    torch.set_num_threads(1)


def _decoded(jobs: list[Job], sample_rate: int, max_samples: int, workers: int) -> Iterator[tuple[Job, tuple]]:
    """(job, decode result) in job order; with workers, decoding runs ahead in other processes."""
    if workers <= 0:
        for job in jobs:
            yield job, _decode(str(job.source), sample_rate, max_samples)
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        pending: deque[tuple[Job, Future]] = deque()
        for job in jobs:  # 2 * workers decodes in flight while the model works
            pending.append((job, pool.submit(_decode, str(job.source), sample_rate, max_samples)))
            if len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        for job, future in pending:
            yield job, future.result()


def remove_stale_temps(jobs: list[Job]) -> int:
    """Delete temp files a killed run left beside these jobs' outputs (other shards' temps are untouched)."""
    removed = 0
    for job in jobs:
        if job.output.parent.is_dir():
            for tmp in job.output.parent.glob(f".{job.output.name}.*{TEMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def failures_name(shard_spec: tuple[int, int] | None = None) -> str:
    """failures.csv, or failures.shard-I-of-N.csv so that shards sharing OUT_DIR keep their own lists."""
    return FAILURES_FILE if shard_spec is None else f"failures.shard-{shard_spec[0]}-of-{shard_spec[1]}.csv"


def run_batch(load_converter: Callable[[], VoiceConverter], jobs: list[Job], output_dir: str | os.PathLike, *,
              voice: Voice | None = None, overwrite: bool = False,
              keep_rate: bool = False, workers: int = 1, batch_size: int = 1, progress: bool = True,
              failures_file: str = FAILURES_FILE) -> BatchResult:
    """Convert `jobs`; record failures in OUT_DIR/`failures_file`.

    Args:
        load_converter: returns the `VoiceConverter`; called only when something is left to convert:
            outputs that exist are skipped (unless `overwrite`) and sources that cannot be converted are
            listed as failures first, with numpy and soundfile alone, so resuming a finished run takes no
            model (and no PyTorch) at all.
        voice: the target of every job, made before the run (a blend); None: each job's `targets` are read
            (`targets.load_target`) once per distinct set, when first needed.
    Inputs are never written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    inputs = {p.resolve() for j in jobs for p in (j.source, *j.targets) if isinstance(p, Path)}
    clash = next((j for j in jobs if j.output.resolve() in inputs), None)
    if clash is not None:
        raise VcAppError(f"The output {clash.output} would overwrite an input; choose another output folder.")
    remove_stale_temps(jobs)
    result = BatchResult()
    todo = []
    for job in jobs:
        if job.output.exists() and not overwrite:
            result.skipped += 1
        else:
            todo.append(job)
    try:
        todo = _drop_leading_failures(todo, result)
        if todo:
            _convert_jobs(load_converter(), todo, result, voice,
                          keep_rate=keep_rate, overwrite=overwrite, workers=workers, batch_size=batch_size,
                          progress=progress)
    finally:
        write_failures(output_dir / failures_file, result.failures, output_dir)
    return result


def _drop_leading_failures(todo: list[Job], result: BatchResult) -> list[Job]:
    """Fail the jobs before the first one whose source and target files can be used, without the model (the
    rest are checked as they are decoded): a re-run whose only work left is bad files or missing targets needs
    no model."""
    targets: dict[Path, str] = {}  # target file -> why it cannot be used ('' when it can), checked once each
    for i, job in enumerate(todo):
        reason = _unusable(job, targets)
        if not reason:
            return todo[i:]
        result.failures.append((job, reason))
    return []


def _unusable(job: Job, targets: dict[Path, str]) -> str:
    """Why the job's source or one of its target files cannot be used (numpy and soundfile only), or ''."""
    from vc_app.audio import check_audio_file
    from vc_app.targets import check_target_file

    try:
        check_audio_file(job.source, "source")
    except VcAppError as err:
        return str(err)
    for target in job.targets:
        if target not in targets:
            try:
                check_target_file(target)
                targets[target] = ""
            except VcAppError as err:
                targets[target] = str(err)
        if targets[target]:
            return targets[target]
    return ""


def _convert_jobs(converter: VoiceConverter, todo: list[Job], result: BatchResult, voice: Voice | None, *,
                  keep_rate: bool, overwrite: bool,
                  workers: int, batch_size: int, progress: bool) -> None:
    """Decode (in `workers` processes) and convert `todo` with the loaded converter, a bar showing files/s."""
    from tqdm import tqdm

    if batch_size > 1:  # neighbours of similar length pad least in one model call
        todo = sorted(todo, key=_frames_or_zero)
    bar = tqdm(total=len(todo), unit="file", disable=not progress, dynamic_ncols=True)
    jobs_converter = _JobConverter(converter, result, voice, keep_rate, overwrite, batch_size, bar)
    try:
        for job, decoded in _decoded(todo, converter.sample_rate, converter.chunk, workers):
            jobs_converter.add(job, decoded)
        jobs_converter.flush()
    finally:
        bar.close()


def _frames_or_zero(job: Job) -> float:
    from vc_app.audio import audio_info

    try:
        info = audio_info(job.source)
        return info.frames / info.samplerate
    except VcAppError:
        return 0.0  # unreadable: fails quickly at decode time, first


class _JobConverter:
    """Collects decoded jobs into model batches (GPU) or converts them one by one (CPU)."""

    def __init__(self, converter: VoiceConverter, result: BatchResult, voice: Voice | None, keep_rate: bool,
                 overwrite: bool, batch_size: int, bar):
        self.converter, self.result, self.bar = converter, result, bar
        self.keep_rate, self.overwrite, self.batch_size = keep_rate, overwrite, max(1, batch_size)
        self.voices: dict[tuple[Path, ...], Voice] = {}
        self.voice = voice
        self.waiting: list[tuple[Job, object, int]] = []

    def add(self, job: Job, decoded: tuple) -> None:
        wav, rate, error = decoded
        if error:
            return self._fail(job, error)
        try:
            voice = self._voice(job.targets)
        except VcAppError as err:
            return self._fail(job, str(err))
        if wav is None:  # a long file: streamed by the converter, chunk by chunk
            return self._finish(job, lambda: self.converter.convert(job.source, voice), rate)
        self.waiting.append((job, wav, rate))
        if len(self.waiting) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        import torch

        batch, self.waiting = self.waiting, []
        if len(batch) > 1:
            try:
                outs = self.converter.convert_many([torch.from_numpy(w) for _, w, _ in batch],
                                                   [self._voice(j.targets) for j, _, _ in batch])
            except VcAppError:  # convert one by one, so the failure lands on the job that caused it
                pass
            else:
                for (job, _, rate), out in zip(batch, outs):
                    self._finish(job, lambda out=out: out, rate)
                return
        for job, wav, rate in batch:
            voice = self._voice(job.targets)
            self._finish(job, lambda w=wav, v=voice: self.converter.convert(torch.from_numpy(w), v), rate)

    def _voice(self, targets: tuple[Path, ...]) -> Voice:
        if self.voice is not None:
            return self.voice
        if targets not in self.voices:
            self.voices[targets] = load_target(targets, self.converter.voice)
        return self.voices[targets]

    def _finish(self, job: Job, convert, rate: int) -> None:
        from vc_app.audio import resample, write_audio

        try:
            wav = convert()
            if self.keep_rate and rate and rate != self.converter.sample_rate:
                wav = resample(wav, self.converter.sample_rate, rate)
            job.output.parent.mkdir(parents=True, exist_ok=True)
            write_audio(job.output, wav, rate if self.keep_rate and rate else self.converter.sample_rate,
                        overwrite=self.overwrite)
        except VcAppError as err:
            return self._fail(job, str(err))
        self.result.converted += 1
        self.bar.update(1)

    def _fail(self, job: Job, reason: str) -> None:
        self.result.failures.append((job, reason))
        self.bar.update(1)


def write_failures(path: Path, failures: list[tuple[Job, str]], output_dir: Path) -> None:
    """OUT_DIR/failures.csv for this run, written atomically; removed when nothing failed.

    Columns: `line` (the manifest line; empty in folder mode), `source` and `output` as the user gave them (the
    manifest's cells, or INPUT_DIR/... and the path under OUT_DIR in folder mode; a source used in two rows
    stays two rows apart), `reason`.
    """
    if not failures:
        path.unlink(missing_ok=True)
        return
    rows = [(job.line or "", job.given or str(job.source), job.name if job.line else _under_dir(job.output, output_dir),
             reason) for job, reason in failures]
    write_csv(path, ["line", "source", "output", "reason"], rows)


def _under_dir(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)
