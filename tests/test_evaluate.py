"""`vc-app evaluate`: every metric in a sane range, every output file, the metrics' own definitions, bad input.

The tiny set: four espeak-ng voices as "speakers", each saying the same two sentences (a parallel
corpus with transcripts), converted by a tiny random bundle with Griffin-Lim (2 iterations).
"""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, run_cli, tts

pytest.importorskip("resemblyzer", reason="the eval extra is not installed")

VOICES = {"en": "en", "f3": "en+f3", "m3": "en+m3", "us": "en-us"}
SENTENCES = {"s1": "Please call Stella.", "s2": "The birch canoe slid on the smooth planks."}
# one thread: Resemblyzer's LSTM crawls when PyTorch threads compete with other work for few cores
COMMON = ("--vocoder", "griffinlim:2", "--device", "cpu", "--threads", "1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """speaker/sentence.wav with speaker/sentence.txt beside it."""
    root = tmp_path_factory.mktemp("voices")
    for speaker, voice in VOICES.items():
        for name, text in SENTENCES.items():
            tts(text, root / speaker / f"{name}.wav", voice=voice)
            (root / speaker / f"{name}.txt").write_text(text + "\n")
    return root


def write_csv(path, rows, columns=("source", "target", "reference", "text")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def check_summary(summary: dict, n_pairs: int, n_references: int, failed: int = 0) -> None:
    sim = summary["speaker_similarity"]
    assert sim["n"] == n_pairs and summary["pairs"] == {"n": n_pairs + failed, "failed": failed}
    for key in ("mean_sim_to_target", "mean_sim_to_source", "mean_sim_source_to_target"):
        assert -1.0 <= sim[key] <= 1.0
    assert 0.0 <= sim["share_closer_to_target"] <= 1.0
    assert math.isclose(sim["margin"], sim["mean_sim_to_target"] - sim["mean_sim_to_source"], abs_tol=1e-9)
    wer = summary["intelligibility"]
    assert wer["n"] == n_pairs and wer["words"] > 0
    assert wer["wer_converted"] >= 0 and wer["wer_source"] >= 0
    mcd = summary["mcd"]
    assert mcd["n"] == n_references and 0 <= mcd["mean_db"] < 100 and 0 <= mcd["mean_db_source"] < 100
    dis = summary["disentanglement"]
    assert dis["measured"]
    for probe in ("content_probe", "speaker_probe"):
        assert 0.0 <= dis[probe]["accuracy"] <= 1.0
    assert 0.0 < dis["chance"] <= 0.5
    assert 0 < summary["speed"]["rtf"] < 10
    assert [b["status"] in ("met", "not met") for b in summary["bars"][:3]] == [True] * 3
    # one test clip per speaker: the probe ratio is not a measurement, and says so
    assert summary["bars"][3]["status"] == "not measured (too few clips)" and summary["bars"][3]["measured"] is None
    nat = summary["naturalness"]  # DNSMOS of the converted clips, the sources and their copy-synthesis
    assert nat["n"] == n_pairs
    for key in ("p808_converted", "ovrl_converted", "p808_source", "ovrl_source", "p808_copy_synthesis",
                "ovrl_copy_synthesis"):
        assert 1.0 <= nat[key] <= 5.0, key
    assert summary["bars"][4]["name"].startswith("DNSMOS P.808") and summary["bars"][4]["status"] in ("met", "not met")


@pytest.mark.slow
def test_evaluate_csv_end_to_end(tiny_bundle, corpus, tmp_path):
    sf.write(str(tmp_path / "silent.wav"), np.zeros(22050, np.float32), 22050)
    pairs = write_csv(corpus / "pairs.csv", [
        ("en/s1.wav", "f3/s2.wav", "f3/s1.wav", SENTENCES["s1"]),
        ("f3/s2.wav", "m3/s1.wav;m3/s2.wav", "", SENTENCES["s2"]),  # two target clips, no reference
        ("m3/s1.wav", "us/s2.wav", "us/s1.wav", SENTENCES["s1"]),
        ("us/s2.wav", "en/s1.wav", "en/s2.wav", SENTENCES["s2"]),
        ("us/s1.wav", str(tmp_path / "silent.wav"), "", ""),  # fails, is listed, and the run goes on
    ])
    out = tmp_path / "eval"
    done = run_cli("evaluate", "--pairs", str(pairs), "--checkpoint", str(tiny_bundle), "--out", str(out),
                   "--keep-audio", *COMMON)
    assert done.returncode == 0, done.stderr
    for name in ("per_pair.csv", "summary.json", "report.md", "similarity.png", "speaker_vectors.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "audio").glob("*.wav"))) == 4
    summary = json.loads((out / "summary.json").read_text())
    check_summary(summary, 4, n_references=3, failed=1)  # the pair without a reference has no MCD
    assert "chance" in done.stdout and "bars:" in done.stdout and "DNSMOS P.808 / OVRL" in done.stdout
    report = (out / "report.md").read_text()
    assert "## Bars" in report and "similarity.png" in report and "speaker_vectors.png" in report
    assert "DNSMOS P.808 / OVRL (4 pairs" in report
    header = (out / "per_pair.csv").read_text().splitlines()[0].split(",")
    assert {"dnsmos_p808", "dnsmos_ovrl", "dnsmos_p808_source", "dnsmos_p808_copy_synthesis"} <= set(header)
    assert "## Failed pairs" in report and "silent.wav is silent" in report

    from vc_app.pairs import read_pairs

    again = read_pairs(out / "per_pair.csv")  # the per-pair CSV is itself a valid pairs file
    assert [len(p.targets) for p in again] == [1, 2, 1, 1, 1] and again[0].text == SENTENCES["s1"]

    rerun = run_cli("evaluate", "--pairs", str(pairs), "--checkpoint", str(tiny_bundle), "--out", str(out), *COMMON)
    assert rerun.returncode != 0 and "--overwrite" in rerun.stderr


@pytest.mark.slow
def test_evaluate_pairs_from_corpus(tiny_bundle, corpus, tmp_path):
    out = tmp_path / "eval"
    done = run_cli("evaluate", "--pairs-from-corpus", str(corpus), "--speakers", "en,m3", "--pairs-per-speaker", "1",
                   "--checkpoint", str(tiny_bundle), "--out", str(out), "--no-ladder", *COMMON)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    check_summary(summary, 2, n_references=2)
    assert summary["disentanglement"]["speaker_probe"]["n_speakers"] == 2
    ladder = summary["ladder"]  # --no-ladder: no self-reconstruction; the source, copy-synthesis and conversion
    assert not ladder["self_reconstruction"] and ladder["rungs"]["self_source"]["n"] == 0
    assert ladder["rungs"]["copy_synthesis"]["n"] == ladder["rungs"]["conversion"]["n"] == 2


def test_probe_bar_needs_two_test_clips_per_speaker_and_a_speaker_probe_that_finds_something():
    from vc_app.evaluate.summary import evaluate_bars

    def summary(n_test: int, speaker_accuracy: float) -> dict:
        probe = {"accuracy": speaker_accuracy, "chance": 0.25, "n_speakers": 4, "n_train": n_test, "n_test": n_test}
        return {"speaker_similarity": {"n": 4, "share_closer_to_target": 1.0, "margin": 0.2},
                "intelligibility": {"n": 0, "wer_converted": 0.0, "wer_source": 0.0, "ratio": float("nan")},
                "disentanglement": {"measured": True, "content_probe": {**probe, "accuracy": 0.25},
                                    "speaker_probe": probe, "chance": 0.25},
                "naturalness": {"n": 0, "reason": "no clip was scored"}}

    assert evaluate_bars(summary(8, 1.0))[3].status == "met"
    assert evaluate_bars(summary(8, 0.25))[3].status == "not met"
    for n_test, accuracy in ((4, 1.0), (8, 0.0)):  # one test clip per speaker; a probe that learned nothing
        bar = evaluate_bars(summary(n_test, accuracy))[3]
        assert bar.status == "not measured (too few clips)" and bar.measured is None
        assert bar.to_dict()["status"] == "not measured (too few clips)" and bar.to_dict()["measured"] is None


def test_pairs_from_parallel_corpus_use_the_same_sentence_as_reference_never_as_target(corpus):
    from vc_app.pairs import pairs_from_corpus

    pairs = pairs_from_corpus(corpus, ["en", "f3", "m3"], pairs_per_speaker=2, seed=3)
    assert len(pairs) == 3 * 2 * 2
    assert pairs == pairs_from_corpus(corpus, ["en", "f3", "m3"], pairs_per_speaker=2, seed=3)
    for pair in pairs:
        source_name = os.path.basename(pair.source)
        assert pair.source_speaker != pair.target_speaker
        assert os.path.basename(pair.reference) == source_name
        assert os.path.basename(os.path.dirname(pair.reference)) == pair.target_speaker
        assert all(os.path.basename(t) != source_name for t in pair.targets)
        assert pair.text == SENTENCES[source_name.removesuffix(".wav")]


@pytest.mark.slow
def test_mcd_is_zero_for_a_clip_against_itself_and_ignores_loudness(corpus):
    from vc_app.audio import load_audio
    from vc_app.config import MelConfig
    from vc_app.evaluate.mcd import mel_cepstral_distortion

    cfg = MelConfig()
    clip = load_audio(corpus / "en" / "s2.wav", cfg.sample_rate)
    assert mel_cepstral_distortion(clip, clip, cfg) < 0.5
    assert mel_cepstral_distortion(clip, 0.3 * clip, cfg) < 0.5  # c0 (level) is excluded
    other_voice = load_audio(corpus / "f3" / "s2.wav", cfg.sample_rate)
    assert mel_cepstral_distortion(clip, other_voice, cfg) > 1.0


def test_probe_scores_perfect_identity_vectors_near_one_and_random_vectors_near_chance():
    from vc_app.evaluate.probe import speaker_probe

    rng = np.random.default_rng(0)
    labels = [f"spk{i}" for i in range(4) for _ in range(20)]
    identity = np.stack([np.eye(16)[int(label[3:])] for label in labels]) + 0.05 * rng.standard_normal((80, 16))
    perfect = speaker_probe(identity, labels)
    assert perfect.accuracy >= 0.99 and perfect.chance == pytest.approx(0.25)
    assert (perfect.n_train, perfect.n_test, perfect.n_speakers) == (40, 40, 4)
    random = speaker_probe(rng.standard_normal((80, 16)), labels)
    assert random.accuracy < 0.5


def test_wer_normalises_case_and_punctuation():
    from vc_app.evaluate.intelligibility import word_errors

    assert word_errors("Please call Stella -- don't wait!", "please call stella don't wait").errors == 0
    assert word_errors("well-known facts", "well known facts").wer == 0
    assert word_errors("one two three four", "one too three").wer == pytest.approx(0.5)
    assert word_errors("one two", "").wer == 1.0


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("columns", "needs a header with the columns source and target"),
    ("audio", "Pair 1: "),
    ("max_pairs", "--max-pairs must be at least 1, not 0."),
])
def test_bad_input_gives_one_sentence(tiny_bundle, corpus, tmp_path, case, message):
    pairs = tmp_path / "pairs.csv"
    extra = ("--max-pairs", "0") if case == "max_pairs" else ()
    if case == "columns":
        write_csv(pairs, [("en/s1.wav", "f3/s1.wav")], columns=("clip", "voice"))
    elif case == "audio":
        write_csv(pairs, [(str(corpus / "en" / "s1.wav"), str(tmp_path / "nowhere.wav"), "", "")])
    done = run_cli("evaluate", "--pairs", str(pairs), "--checkpoint", str(tiny_bundle), "--out", str(tmp_path / "o"),
                   *COMMON, *extra)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "summary.json").exists()


def test_missing_eval_extra_names_the_package(tiny_bundle, corpus, tmp_path):
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "jiwer.py").write_text("raise ImportError(\"No module named 'jiwer'\", name='jiwer')\n")
    pairs = write_csv(tmp_path / "pairs.csv", [(str(corpus / "en" / "s1.wav"), str(corpus / "f3" / "s2.wav"), "", "")])
    done = run_cli("evaluate", "--pairs", str(pairs), "--checkpoint", str(tiny_bundle), "--out", str(tmp_path / "o"),
                   *COMMON, env={"PYTHONPATH": f"{fake}{os.pathsep}{REPO}"})
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "'jiwer'" in done.stderr and "pip install" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


LADDER_PAIRS = [  # en and m3 have another clip in the pairs (a target), us has none: its self-reconstruction
    ("en/s1.wav", "m3/s1.wav", SENTENCES["s1"]),  # from another clip is not measured, and counted
    ("m3/s2.wav", "en/s2.wav", ""),
    ("us/s2.wav", "f3/s1.wav", ""),
]


@pytest.mark.slow
def test_naturalness_ladder_rows_summary_report_plot_and_model_card(tiny_bundle, corpus, tmp_path):
    padded = tmp_path / "padded"  # the clips with 0.4 s of silence around them: pauses and a tail to measure
    for speaker in VOICES:
        for name in SENTENCES:
            wav, rate = sf.read(str(corpus / speaker / f"{name}.wav"), dtype="float32")
            (padded / speaker).mkdir(parents=True, exist_ok=True)
            silence = np.zeros(int(0.4 * rate), np.float32)
            sf.write(str(padded / speaker / f"{name}.wav"), np.concatenate([silence, wav, silence]), rate)
    pairs = write_csv(tmp_path / "pairs.csv", [(str(padded / a), str(padded / b), "", t) for a, b, t in LADDER_PAIRS])
    out = tmp_path / "eval"
    done = run_cli("evaluate", "--pairs", str(pairs), "--checkpoint", str(tiny_bundle), "--out", str(out), *COMMON)
    assert done.returncode == 0, done.stderr
    ladder = json.loads((out / "summary.json").read_text())["ladder"]
    rungs = ladder["rungs"]
    assert list(rungs) == ["source", "copy_synthesis", "self_other", "self_source", "conversion"]
    assert {key: r["n"] for key, r in rungs.items()} == {"source": 3, "copy_synthesis": 3, "self_other": 2,
                                                         "self_source": 3, "conversion": 3}
    assert ladder["no_other_clip"] == 1 and ladder["n_sources"] == 3 and ladder["self_reconstruction"]
    assert rungs["source"]["sim_to_source"] == 1.0 and rungs["source"]["pause_n"] == 0
    for key, r in rungs.items():
        assert 1.0 <= r["p808"] <= 5.0 and 1.0 <= r["ovrl"] <= 5.0, key
        assert -1.0 <= r["sim_to_source"] <= 1.0 and r["words"] == 3 and r["wer"] >= 0, key  # one pair has text
        if key != "source":
            assert r["pause_n"] == r["tail_n"] == r["n"] and -80 <= r["pause_level"] <= 80, key
            assert -80 <= r["tail_level"] <= 80, key

    with open(out / "ladder.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 3 + 2 + 3  # source, copy-synthesis, self (itself) per source; 2 others; 3 conversions
    self_other = {(os.path.relpath(r["source"], padded), os.path.relpath(r["target"], padded))
                  for r in rows if r["rung"] == "self_other"}
    assert self_other == {("en/s1.wav", "en/s2.wav"), ("m3/s2.wav", "m3/s1.wav")}
    assert all(r["target"] == r["source"] for r in rows if r["rung"] == "self_source")
    assert all(r["pause_level"] == "" for r in rows if r["rung"] == "source")
    with open(out / "per_pair.csv", newline="") as handle:
        per_pair = list(csv.DictReader(handle))
    assert [r["pause_level"] for r in per_pair] == [r["pause_level"] for r in rows if r["rung"] == "conversion"]

    assert (out / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "## Naturalness ladder" in report and "ladder.png" in report
    assert "1 of the sources had no other clip of their speaker" in report
    assert "copy-synthesis: our mel → the vocoder" in done.stdout

    from vc_app.bundle import load_bundle
    from vc_app.recipe import model_card

    card = model_card(load_bundle(str(tiny_bundle)), "tiny", None, {"Cross-corpus speakers": report})
    assert "### Naturalness ladder" in card and "| self-reconstruction: target = the source itself | 3 |" in card
    assert "ladder.png" not in card


def test_screening_subset_is_spread_evenly_and_the_same_every_time():
    from vc_app.evaluate.runner import spread_subset
    from vc_app.pairs import Pair

    pairs = [Pair(f"s{i}.wav", (f"t{i}.wav",)) for i in range(10)]
    assert [p.source for p in spread_subset(pairs, 4)] == ["s0.wav", "s3.wav", "s6.wav", "s9.wav"]
    assert spread_subset(pairs, 4) == spread_subset(pairs, 4)
    assert spread_subset(pairs, 1) == pairs[:1] and spread_subset(pairs, None) == spread_subset(pairs, 10) == pairs
