"""Evaluation outputs: per_pair.csv, ladder.csv, summary.json, report.md and its PNG plots (matplotlib, Agg canvas).

Every file is written to a temp name and renamed, so an interrupted run never leaves half a report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vc_app.pairs import PAIR_COLUMNS, Pair, pair_row
from vc_app.paths import atomic_write, write_csv

RESULT_COLUMNS = ("seconds", "convert_seconds", "rtf", "sim_to_target", "sim_to_source", "sim_source_to_target",
                  "closer_to_target", "words", "wer_converted", "wer_source", "transcript_converted",
                  "transcript_source", "mcd", "mcd_source", "dnsmos_p808", "dnsmos_ovrl", "dnsmos_p808_source",
                  "dnsmos_ovrl_source", "dnsmos_p808_copy_synthesis", "dnsmos_ovrl_copy_synthesis", "pause_level",
                  "tail_level", "audio", "error")
LADDER_COLUMNS = ("source", "source_speaker", "rung", "target", "dnsmos_p808", "dnsmos_ovrl", "sim_to_source",
                  "pause_level", "tail_level", "words", "wer", "transcript")
SIMILARITY_PLOT, PROJECTION_PLOT, LADDER_PLOT = "similarity.png", "speaker_vectors.png", "ladder.png"


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def result_row(r) -> dict[str, str]:
    """One per-pair CSV row: the pair's own columns, then its measurements ('' where not applicable)."""
    conv, src = r.errors_converted, r.errors_source
    row = pair_row(r.pair)
    row.update({
        "seconds": _fmt(r.seconds), "convert_seconds": _fmt(r.convert_seconds),
        "rtf": _fmt(r.convert_seconds / r.seconds if r.seconds else float("nan"), 4),
        "sim_to_target": _fmt(r.sim_to_target, 4), "sim_to_source": _fmt(r.sim_to_source, 4),
        "sim_source_to_target": _fmt(r.sim_source_to_target, 4),
        "closer_to_target": "" if r.error else str(int(r.closer_to_target)),
        "words": str(conv.words) if conv else "", "wer_converted": _fmt(conv.wer if conv else None, 4),
        "wer_source": _fmt(src.wer if src else None, 4), "transcript_converted": r.transcript_converted,
        "transcript_source": r.transcript_source, "mcd": _fmt(r.mcd), "mcd_source": _fmt(r.mcd_source),
        "dnsmos_p808": _fmt(r.dnsmos_converted.p808), "dnsmos_ovrl": _fmt(r.dnsmos_converted.ovrl),
        "dnsmos_p808_source": _fmt(r.dnsmos_source.p808), "dnsmos_ovrl_source": _fmt(r.dnsmos_source.ovrl),
        "dnsmos_p808_copy_synthesis": _fmt(r.dnsmos_copy_synthesis.p808),
        "dnsmos_ovrl_copy_synthesis": _fmt(r.dnsmos_copy_synthesis.ovrl),
        "pause_level": _fmt(r.pause_level, 2), "tail_level": _fmt(r.tail_level, 2),
        "audio": r.audio, "error": r.error,
    })
    return row


def write_pairs_csv(path: Path, results) -> None:
    write_csv(path, [*PAIR_COLUMNS, *RESULT_COLUMNS], [result_row(r) for r in results], lineterminator="\n")


def ladder_rows(results) -> list[dict[str, str]]:
    """ladder.csv: every source's rungs once (in the order of the pairs), then every pair's conversion."""
    from vc_app.evaluate.ladder import SOURCE_RUNGS

    ok = [r for r in results if not r.error]
    sources = {r.pair.source: r for r in ok}.values()
    rungs = [(r, key, r.ladder[key]) for r in sources for key in SOURCE_RUNGS]
    rungs += [(r, "conversion", r.conversion) for r in ok]
    rows = []
    for r, key, rung in rungs:
        if not rung.measured:
            continue
        rows.append({"source": r.pair.source, "source_speaker": r.pair.source_speaker, "rung": key,
                     "target": rung.target, "dnsmos_p808": _fmt(rung.dnsmos.p808),
                     "dnsmos_ovrl": _fmt(rung.dnsmos.ovrl),
                     "sim_to_source": _fmt(rung.sim_to_source, 4), "pause_level": _fmt(rung.pause_level, 2),
                     "tail_level": _fmt(rung.tail_level, 2), "words": str(rung.errors.words) if rung.errors else "",
                     "wer": _fmt(rung.errors.wer if rung.errors else None, 4), "transcript": rung.transcript})
    return rows


def _figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))


def plot_similarity(path: Path, results) -> None:
    """Scatter of similarity to source (x) against similarity to target (y): above the diagonal = closer to target."""
    ok = [r for r in results if not r.error]
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    x, y = [r.sim_to_source for r in ok], [r.sim_to_target for r in ok]
    ax.scatter(x, y, s=18, alpha=0.7)
    lo, hi = min([*x, *y, 0.0]) - 0.05, max([*x, *y, 1.0]) + 0.02
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1, ls="--")
    above = np.mean([a < b for a, b in zip(x, y)]) if ok else 0.0
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="cosine(converted, source)", ylabel="cosine(converted, target)",
           title=f"Resemblyzer similarity, {len(ok)} pairs\n{above:.0%} above the diagonal (closer to the target)")
    _save(fig, path)


def _pca_2d(vectors: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    return PCA(n_components=2, random_state=0).fit_transform(vectors)


def plot_projection(path: Path, probes) -> None:
    """2-D PCA of speaker vectors and of time-averaged content codes, one colour per speaker."""
    fig = _figure(10, 4.6)
    speakers = sorted(set(probes.labels))
    from matplotlib import colormaps

    cmap = colormaps["tab20" if len(speakers) > 10 else "tab10"]
    colours = {s: cmap(i % cmap.N) for i, s in enumerate(speakers)}
    for col, (vectors, title) in enumerate([(probes.speaker_vectors, "speaker vectors"),
                                            (probes.content_vectors, "time-averaged content codes")]):
        ax = fig.add_subplot(1, 2, col + 1)
        points = _pca_2d(vectors)
        for s in speakers:
            idx = [i for i, label in enumerate(probes.labels) if label == s]
            ax.scatter(points[idx, 0], points[idx, 1], s=16, color=colours[s], label=s)
        ax.set(title=f"PCA of {title}", xlabel="PC 1", ylabel="PC 2")
    fig.axes[0].legend(fontsize=7, loc="best", markerscale=1.2)
    _save(fig, path)


def plot_ladder(path: Path, mels: dict[str, np.ndarray], pair_name: str) -> None:
    """The ladder's log-mels of one pair, one above the other on one colour scale (dB, 80 dB range)."""
    from vc_app.evaluate.ladder import RUNGS

    db = {key: 20 / np.log(10) * mel for key, mel in mels.items()}  # natural log of amplitude -> dB
    top = max(float(m.max()) for m in db.values())
    fig = _figure(9, 1.9 * len(db) + 0.4)
    for i, (key, mel) in enumerate(db.items()):
        ax = fig.add_subplot(len(db), 1, i + 1)
        image = ax.imshow(mel, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma")
        ax.set(title=RUNGS[key], ylabel="mel band")
        ax.title.set_fontsize(9)
        if i == len(db) - 1:
            ax.set_xlabel("frame")
        fig.colorbar(image, ax=ax, label="dB", pad=0.01)
    fig.suptitle(pair_name, fontsize=9)
    _save(fig, path)


def _signed(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:+.{digits}f}"


def ladder_table(ladder: dict) -> list[str]:
    """The naturalness ladder as Markdown table lines (no WER column when no pair had text)."""
    rungs = ladder["rungs"].values()
    with_wer = any(r["words"] for r in rungs)
    lines = ["| what is played | clips | DNSMOS P.808 | OVRL | similarity to the source | pause level (dB) | "
             "tail level (dB) |" + (" WER |" if with_wer else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if with_wer else "")]
    for key, r in ladder["rungs"].items():
        if not r["n"]:
            continue
        pause = "—" if key == "source" else f"{_signed(r['pause_level'])} ({r['pause_n']})"
        tail = "—" if key == "source" else f"{_signed(r['tail_level'])} ({r['tail_n']})"
        wer = f" {_fmt(r['wer'])} |" if with_wer else ""
        lines.append(f"| {r['label']} | {r['n']} | {_fmt(r['p808'], 2)} | {_fmt(r['ovrl'], 2)} | "
                     f"{_fmt(r['sim_to_source'], 2)} | {pause} | {tail} |{wer}")
    return lines


def ladder_notes(ladder: dict) -> str:
    """What the ladder table leaves out, in one paragraph."""
    notes = [f"{ladder['n_sources']} sources, {ladder['n_pairs']} pairs.",
             "Pause and tail level (docs/evaluation.md): the clip's level where the source is silent, in dB above "
             "the source's; in brackets the clips with at least 10 such frames (the others are left out)."]
    if not ladder["self_reconstruction"]:
        notes.append("Self-reconstructions not measured (`--no-ladder`).")
    elif ladder["no_other_clip"]:
        notes.append(f"{ladder['no_other_clip']} of the sources had no other clip of their speaker in the pairs: "
                     "no self-reconstruction from another clip for them.")
    return " ".join(notes)


def bars_table(summary: dict) -> list[str]:
    lines = ["| bar | measured | required | status |", "|---|---|---|---|"]
    for bar in summary["bars"]:
        lines.append(f"| {bar['name']} | {_fmt(bar['measured'])} | {bar['required']} | **{bar['status']}** |")
    return lines


def naturalness_line(nat: dict) -> str:
    """The DNSMOS means of a summary's "naturalness" entry, or why they were not measured."""
    if not nat["n"]:
        return f"DNSMOS: not measured ({nat['reason']})"
    return (f"DNSMOS P.808 / OVRL ({nat['n']} pairs, {nat['n_sources']} sources): converted "
            f"{_fmt(nat['p808_converted'], 2)} / {_fmt(nat['ovrl_converted'], 2)}, unconverted source "
            f"{_fmt(nat['p808_source'], 2)} / {_fmt(nat['ovrl_source'], 2)}, source through the same vocoder "
            f"{_fmt(nat['p808_copy_synthesis'], 2)} / {_fmt(nat['ovrl_copy_synthesis'], 2)}")


def metrics_lines(summary: dict) -> list[str]:
    """The headline numbers as Markdown bullet lines (also printed on the console, without the bullets)."""
    sim, wer, mcd = summary["speaker_similarity"], summary["intelligibility"], summary["mcd"]
    dis, speed, nat = summary["disentanglement"], summary["speed"], summary["naturalness"]
    lines = [
        f"speaker similarity ({sim['n']} pairs): to target {_fmt(sim['mean_sim_to_target'])}, to source "
        f"{_fmt(sim['mean_sim_to_source'])}, margin {_fmt(sim['margin'])}; closer to target in "
        f"{_pct(sim['share_closer_to_target'])} of pairs (unconverted source vs target: "
        f"{_fmt(sim['mean_sim_source_to_target'])})",
        (f"WER ({wer['n']} pairs, {wer['words']} words): converted {_fmt(wer['wer_converted'])}, unconverted source "
         f"{_fmt(wer['wer_source'])}, ratio {_fmt(wer['ratio'])}") if wer["n"] else "WER: not measured (no text)",
        (f"MCD ({mcd['n']} pairs): converted vs reference {_fmt(mcd['mean_db'], 2)} dB, unconverted source vs "
         f"reference {_fmt(mcd['mean_db_source'], 2)} dB") if mcd["n"] else "MCD: not measured (no reference)",
        naturalness_line(nat),
    ]
    if dis["measured"]:
        c, s = dis["content_probe"], dis["speaker_probe"]
        lines.append(f"speaker probe accuracy ({s['n_speakers']} speakers, {s['n_train']} train / {s['n_test']} test "
                     f"clips): content codes {_fmt(c['accuracy'])} (lower is better), speaker vectors "
                     f"{_fmt(s['accuracy'])} (higher is better), chance {_fmt(dis['chance'])}")
    else:
        lines.append(f"speaker probes: not measured ({dis['reason']})")
    lines.append(f"speed: real-time factor {_fmt(speed['rtf'], 4)} ({_fmt(speed['times_real_time'], 1)}x real time, "
                 f"{_fmt(speed['audio_seconds'], 1)} s of audio, device {summary['run'].get('device', '?')})")
    return lines


def console_text(summary: dict) -> str:
    """What `vc-app evaluate` prints at the end."""
    lines = [*metrics_lines(summary), "naturalness ladder (DNSMOS P.808, similarity to the source, pause and tail "
             "level in dB):"]
    for key, r in summary["ladder"]["rungs"].items():
        if r["n"]:
            lines.append(f"  {_fmt(r['p808'], 2):>5} {_fmt(r['sim_to_source'], 2):>5} "
                         f"{'' if key == 'source' else _signed(r['pause_level']):>6} "
                         f"{'' if key == 'source' else _signed(r['tail_level']):>6}  {r['label']}")
    lines.append("bars:")
    lines += [f"  {bar['status']:>12}: {bar['name']} = {_fmt(bar['measured'])} (required {bar['required']})"
              for bar in summary["bars"]]
    return "\n".join(lines)


def report_markdown(summary: dict, results, *, projection: bool) -> str:
    run = summary["run"]
    failed = [r for r in results if r.error]
    lines = ["# Voice-conversion evaluation", "",
             f"- checkpoint: `{run.get('checkpoint', '?')}`", f"- vocoder: `{run.get('vocoder', '?')}`",
             f"- pairs: {summary['pairs']['n']} ({summary['pairs']['failed']} failed); device {run.get('device')}, "
             f"{run.get('torch_threads')} torch threads, seed {run.get('seed')}",
             f"- command: `{run.get('command', '')}`", "",
             "Protocol: see the README section *Evaluation*. Per-pair numbers: `per_pair.csv`; all aggregates: "
             "`summary.json`.", "", "## Bars", "", *bars_table(summary), "", "## Metrics", "",
             *[f"- {line}" for line in metrics_lines(summary)], "",
             "## Naturalness ladder", "", *ladder_table(summary["ladder"]), "", ladder_notes(summary["ladder"]), "",
             f"![log-mels of the ladder for one pair]({LADDER_PLOT})", "",
             "## Speaker similarity", "", f"![similarity]({SIMILARITY_PLOT})", ""]
    if projection:
        lines += ["## Disentanglement", "", f"![speaker vectors and content codes]({PROJECTION_PLOT})", ""]
    if failed:
        lines += ["## Failed pairs", ""] + [f"- `{Path(r.pair.source).name}`: {r.error}" for r in failed] + [""]
    return "\n".join(lines)


def write_outputs(out: Path, results, probes, summary: dict, ladder_plot: tuple[Pair, dict[str, np.ndarray]]
                  ) -> None:
    """Write per_pair.csv, ladder.csv, summary.json, the plots and report.md into `out`.

    Args:
        ladder_plot: a pair and the log-mels of its ladder (`ladder.ladder_mels`), for ladder.png.
    """
    write_pairs_csv(out / "per_pair.csv", results)
    write_csv(out / "ladder.csv", list(LADDER_COLUMNS), ladder_rows(results), lineterminator="\n")
    pair, mels = ladder_plot
    plot_ladder(out / LADDER_PLOT, mels, f"{Path(pair.source).name} → {pair.target_speaker or 'the target'}")
    atomic_write(out / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))
    plot_similarity(out / SIMILARITY_PLOT, results)
    projection = probes is not None and len(probes.labels) >= 2
    if projection:
        plot_projection(out / PROJECTION_PLOT, probes)
    atomic_write(out / "report.md", lambda p: p.write_text(report_markdown(summary, results, projection=projection)))
