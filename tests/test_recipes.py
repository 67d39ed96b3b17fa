"""The recipes end to end: recipes/vctk/run.sh on generated VCTK 0.80 and 0.92 folders, and
recipes/folder/run.sh on a folder-per-speaker tree (and on ../shared/data/speech when present).

The corpora are six synthetic voices (conftest.voice_corpus) laid out exactly like the releases;
training uses a tiny model for ~30 steps. Stage 4 uses the built-in held-out losses so the tests
need neither the eval extra nor the network.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from conftest import REPO, SENTENCES, SHARED_SPEECH, VOICES, tiny_train_overrides

VCTK_RUN = REPO / "recipes" / "vctk" / "run.sh"
FOLDER_RUN = REPO / "recipes" / "folder" / "run.sh"


def user_env() -> dict[str, str]:
    """The environment of a user's fresh shell: PATH and HOME only (no PYTHON, no PYTHONPATH).

    The recipe must find its Python by itself: the checkout's .venv (the README's set-up), else
    `python3` on PATH; without a .venv, the Python running these tests stands in for an activated one.
    """
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if not (REPO / ".venv" / "bin" / "python").exists():
        path = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    return {"PATH": path, "HOME": os.environ.get("HOME", str(REPO))}


def run_recipe(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a recipe's run.sh as a user does: through bash, from a clean environment."""
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True, env=user_env(),
                          timeout=timeout)


def make_vctk(voice_corpus, root: Path, release: str) -> Path:
    """A VCTK folder of `release` ("0.80": wav48/*.wav; "0.92": wav48_silence_trimmed/*_mic{1,2}.flac)."""
    for speaker, clips in voice_corpus.items():
        for wav, text in clips:
            if release == "0.80":
                (root / "wav48" / speaker).mkdir(parents=True, exist_ok=True)
                shutil.copy(wav, root / "wav48" / speaker / wav.name)
            else:
                folder = root / "wav48_silence_trimmed" / speaker
                folder.mkdir(parents=True, exist_ok=True)
                data, rate = sf.read(str(wav))
                sf.write(str(folder / f"{wav.stem}_mic1.flac"), data, rate)
                sf.write(str(folder / f"{wav.stem}_mic2.flac"), 0.7 * data, rate)
            (root / "txt" / speaker).mkdir(parents=True, exist_ok=True)
            (root / "txt" / speaker / f"{wav.stem}.txt").write_text(text + "\n")
    header = "ID  AGE  GENDER  ACCENTS  REGION" + ("  COMMENTS" if release == "0.92" else "")
    rows = [f"{s if release == '0.92' else s[1:]}  23  {gender}    English    Southern  England"
            for s, (_, gender) in VOICES.items()]
    (root / "speaker-info.txt").write_text("\n".join([header, *rows]) + "\n")
    return root


def recipe_folders(tmp: Path) -> list[str]:
    return ["--data", tmp / "data", "--feats", tmp / "feats", "--exp", tmp / "exp"]


def train_args(**values) -> str:
    return " ".join(f"--set {item}" for item in tiny_train_overrides(**{"run__max_steps": 30, **values}))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def train_rows(expdir: Path, split: str = "train") -> list[dict]:
    rows = [json.loads(line) for line in (expdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def assert_loss_went_down(expdir: Path) -> None:
    rec = [r["rec"] for r in train_rows(expdir)]
    assert len(rec) == 30
    assert sum(rec[-5:]) / 5 < 0.9 * sum(rec[:5]) / 5, rec


# -- quick checks of the scripts themselves ---------------------------------------------------
def test_missing_vctk_prints_where_to_get_it_and_both_layouts(tmp_path):
    done = run_recipe(VCTK_RUN, "--vctk-root", tmp_path / "nowhere", "--stop-stage", "0", *recipe_folders(tmp_path))
    assert done.returncode == 1
    assert "https://datashare.ed.ac.uk/handle/10283/3443" in done.stderr
    assert "wav48_silence_trimmed/p225/p225_001_mic1.flac" in done.stderr
    assert "wav48/p225/p225_001.wav" in done.stderr and "speaker-info.txt" in done.stderr


def test_unknown_recipe_option_is_refused(tmp_path):
    done = run_recipe(VCTK_RUN, "--vctk-rot", tmp_path)
    assert done.returncode == 1 and "unknown option --vctk-rot" in done.stderr
    assert "--stage N" in run_recipe(FOLDER_RUN, "--help").stdout


def test_help_lists_stages_and_every_option_with_its_default():
    for script in (FOLDER_RUN, VCTK_RUN):
        done = run_recipe(script, "--help")
        assert done.returncode == 0
        assert "5 export" in done.stdout and "--stage N" in done.stdout
        options = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  --")]
        block = script.read_text().split("help_message=")[0] + (REPO / "recipes" / "common" / "options.sh").read_text()
        declared = ["--" + name.replace("_", "-") for name in re.findall(r"^([a-z][a-z0-9_]*)=", block, re.M)]
        assert options == declared
        assert "  --stop-stage       last stage to run [default: 5]" in done.stdout


def smoke_command(scratch: Path) -> str:
    """The quick smoke-training line of recipes/folder/run.sh --help, writing into `scratch`."""
    lines = run_recipe(FOLDER_RUN, "--help").stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Quick smoke training")) + 1
    command = [lines[start]]
    while command[-1].endswith("\\"):
        start += 1
        command.append(lines[start])
    return "\n".join(command).replace("/tmp/vc-smoke", str(scratch))


@pytest.mark.slow
def test_quick_smoke_line_from_help_runs_stages_0_to_5_in_a_clean_environment(tmp_path):
    """What a newcomer pastes: a tiny generated corpus, then every stage, from a shell with no PYTHON set."""
    from vc_app.bundle import load_bundle

    done = subprocess.run(["bash", "-c", smoke_command(tmp_path)], capture_output=True, text=True, env=user_env(),
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for stage in range(6):
        assert f"stage {stage}:" in done.stdout
    heldout = json.loads((tmp_path / "exp" / "adain" / "eval" / "heldout.json").read_text())
    assert heldout["steps"] == 20 and heldout["speakers"] == 2
    assert load_bundle(tmp_path / "exp" / "adain" / "bundle").config["training"]["steps"] == 20


def test_folder_recipe_holds_out_the_named_speakers(voice_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "extra").mkdir(parents=True)
    for speaker, clips in voice_corpus.items():  # a corpus assembled from links to speaker folders
        os.symlink(clips[0][0].parent, corpus / speaker, target_is_directory=True)
    os.symlink(corpus, corpus / "extra" / "loop", target_is_directory=True)
    os.symlink(tmp_path / "missing.wav", corpus / "extra" / "gone.wav")
    for attempt in ("a", "b"):
        done = run_recipe(FOLDER_RUN, corpus, "--unseen", "p226,p228", "--stop-stage", "1",
                          *recipe_folders(tmp_path / attempt))
        assert done.returncode == 0, done.stderr
        assert "30 clips of 6 speakers" in done.stdout
        assert f"skipped {corpus / 'extra' / 'loop'}: a link back to a folder above it" in done.stderr
        assert f"skipped {corpus / 'extra' / 'gone.wav'}: a broken link" in done.stderr
    data = tmp_path / "a" / "data"
    assert {r["speaker"] for r in read_csv(data / "unseen.csv")} == {"p226", "p228"}
    assert {r["speaker"] for r in read_csv(data / "train.csv")} == {"p225", "p227", "p229", "p230"}
    for name in ("train.csv", "valid.csv", "unseen.csv"):  # deterministic
        assert (data / name).read_text() == (tmp_path / "b" / "data" / name).read_text()
    done = run_recipe(FOLDER_RUN, "--stage", "1", "--stop-stage", "1", "--unseen", "p999",
                      *recipe_folders(tmp_path / "a"))
    assert done.returncode == 1 and "error: Held-out speaker(s) not in the corpus: p999." in done.stderr


def test_cross_corpus_speakers_are_held_out_whole_and_paired_as_their_own_set(voice_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    for speaker, clips in voice_corpus.items():
        (corpus / speaker).mkdir(parents=True)
        for wav, _ in clips:
            os.symlink(wav, corpus / speaker / wav.name)
    done = run_recipe(FOLDER_RUN, corpus, "--unseen", "p226", "--cross-corpus", "p228,p229", "--stop-stage", "1",
                      *recipe_folders(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "held-out sets: in-domain (1), cross-corpus (2)" in done.stdout
    data = tmp_path / "data"
    held = {"p226", "p228", "p229"}
    assert {r["speaker"] for r in read_csv(data / "unseen.csv")} == held
    for split in ("train.csv", "valid.csv"):  # no clip of a held-out speaker is trained on
        assert not held & {r["speaker"] for r in read_csv(data / split)}
    assert json.loads((data / "split.json").read_text())["cross_corpus"] == ["p228", "p229"]
    for choose, speakers in ((["--speakers", "p228,p229"], {"p228", "p229"}),
                             (["--exclude-speakers", "p228,p229"], None)):
        out = tmp_path / f"pairs{len(choose[0])}.csv"
        done = subprocess.run([sys.executable, "-m", "vc_app.recipe", "pairs", "--manifest", str(data / "unseen.csv"),
                               "--out", str(out), "--pairs-per-speaker", "2", "--targets", "2", *choose],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if speakers is None:  # the in-domain set is one speaker here: no pairs can be made
            assert done.returncode == 1 and "needs at least two speakers" in done.stderr
            continue
        assert done.returncode == 0, done.stderr
        pairs = read_csv(out)
        assert len(pairs) == 4  # 2 ordered speaker pairs x 2 sources
        for pair in pairs:
            assert {pair["source_speaker"], pair["target_speaker"]} == speakers
            assert all(Path(t).parent.name == pair["target_speaker"] for t in pair["target"].split(";"))


def test_several_roots_and_one_clip_speakers_go_through_stages_0_to_3_and_three_sets_stay_held_out(
        voice_corpus, tmp_path):
    """Two corpus roots joined (one with a speakers.csv table and a speaker of a single clip); three named
    held-out sets; a few speaker-balanced training steps. No held-out speaker reaches a training list, the
    one-clip speaker trains without a validation clip, and stage 4's set list names all three sets."""
    roots = {"first": ["p225", "p226", "p227"], "second": ["p228", "p229"]}
    for root, speakers in roots.items():
        for speaker in speakers:
            (tmp_path / root / speaker).mkdir(parents=True)
            for wav, _ in voice_corpus[speaker]:
                os.symlink(wav, tmp_path / root / speaker / wav.name)
    (tmp_path / "second" / "solo").mkdir()
    os.symlink(voice_corpus["p230"][0][0], tmp_path / "second" / "solo" / "only.wav")
    (tmp_path / "second" / "speakers.csv").write_text("speaker,gender,age\np228,f,30\np229,m,40\nsolo,m,9\n")
    sets = {"in-domain": {"speakers": ["p226"]}, "cross-corpus": {"speakers": ["p228"]},
            "many-voices": {"speakers": ["p229", "p227"], "pairs_per_speaker": 1, "max_pairs": 1, "text_pairs": False}}
    (tmp_path / "sets.json").write_text(json.dumps(sets))
    done = run_recipe(FOLDER_RUN, tmp_path / "first", tmp_path / "second", "--heldout-sets", tmp_path / "sets.json",
                      "--stop-stage", "3", "--nj", "1", *recipe_folders(tmp_path),
                      "--train-args", train_args(run__max_steps=4, data__sampler="speakers", data__batch_size=2))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "folder corpus of 2 roots: 26 clips of 6 speakers (1 with a single clip: training only)" in done.stdout
    data = tmp_path / "data"
    held = {"p226", "p228", "p229", "p227"}
    assert {r["speaker"] for r in read_csv(data / "unseen.csv")} == held
    for split in ("train.csv", "valid.csv"):
        assert not held & {r["speaker"] for r in read_csv(data / split)}
    assert "solo" in {r["speaker"] for r in read_csv(data / "train.csv")}
    assert "solo" not in {r["speaker"] for r in read_csv(data / "valid.csv")}
    assert json.loads((data / "speakers.json").read_text())["speakers"]["p228"]["gender"] == "F"
    corpora = {r["speaker"]: r["corpus"] for r in read_csv(data / "corpus.csv")}
    assert corpora["p225"] == "first" and corpora["solo"] == "second"  # data.corpus_weights mixes them by name
    assert {r["corpus"] for r in read_csv(tmp_path / "feats" / "train" / "index.csv")} == {"first", "second"}
    assert len(train_rows(tmp_path / "exp" / "adain")) == 4
    listed = subprocess.run([sys.executable, "-m", "vc_app.recipe", "sets", "--split", str(data / "split.json")],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert listed.stdout.splitlines() == ["in-domain\tp226\t8\t0\ttrue", "cross-corpus\tp228\t8\t0\ttrue",
                                          "many-voices\tp229,p227\t1\t1\tfalse"]
    chosen = []
    for attempt in range(2):  # --max-pairs: a seeded subset of the 2 x 4 pairs, the same each time
        out = tmp_path / f"pairs{attempt}.csv"
        subprocess.run([sys.executable, "-m", "vc_app.recipe", "pairs", "--manifest", str(data / "unseen.csv"),
                        "--out", str(out), "--speakers", "p229,p227", "--pairs-per-speaker", "4", "--max-pairs", "3",
                        "--targets", "1"], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        chosen.append(read_csv(out))
    assert len(chosen[0]) == 3 and chosen[0] == chosen[1]
    assert all(len(p["target"].split(";")) == 1 for p in chosen[0])  # one-shot: one target clip
    (tmp_path / "second" / "p225").mkdir()  # one name in two roots would merge two people into one voice
    os.symlink(voice_corpus["p230"][1][0], tmp_path / "second" / "p225" / "other.wav")
    done = run_recipe(FOLDER_RUN, tmp_path / "first", tmp_path / "second", "--stop-stage", "0",
                      *recipe_folders(tmp_path / "again"))
    assert done.returncode == 1 and "Speaker p225 is in both" in done.stderr


def test_sets_of_a_split_written_before_named_sets_are_in_domain_and_cross_corpus(tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"unseen": ["a", "b", "c", "d"], "cross_corpus": ["c", "d"]}))
    done = subprocess.run([sys.executable, "-m", "vc_app.recipe", "sets", "--split", str(split),
                           "--pairs-per-speaker", "5"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert done.stdout.splitlines() == ["in-domain\ta,b\t5\t0\ttrue", "cross-corpus\tc,d\t5\t0\ttrue"]


def test_shipped_heldout_sets_keep_both_old_sets_and_add_many_voices():
    """lists/heldout-sets.json: the in-domain and cross-corpus sets exactly as adainvc-speech14 was measured
    on, and a third set of 20 new-corpus voices (10 LibriSpeech test-other, 10 adult speechocean762)."""
    lists = REPO / "recipes" / "folder" / "lists"
    sets = json.loads((lists / "heldout-sets.json").read_text())
    old = json.loads((lists / "adainvc-voices" / "split.json").read_text())
    assert set(sets["cross-corpus"]["speakers"]) == set(old["cross_corpus"])
    assert set(sets["in-domain"]["speakers"]) == set(old["unseen"]) - set(old["cross_corpus"])
    many = sets["many-voices"]["speakers"]
    assert len(many) == 20 and len({s for s in many if s.startswith("ls")}) == 10
    held = {s for spec in sets.values() for s in spec["speakers"]}  # protocol 2's committed lists hold all out
    protocol2 = lists / "speech533"
    assert {r["speaker"] for r in read_csv(protocol2 / "unseen.csv")} == held
    for name in ("train.csv", "valid.csv"):
        assert not held & {r["speaker"] for r in read_csv(protocol2 / name)}
    assert len({r["speaker"] for r in read_csv(protocol2 / "train.csv")}) == 505
    more = SHARED_SPEECH.parent / "more_speech"
    if more.is_dir():
        rows = read_csv(more / "speechocean762" / "speakers.csv")
        adults = {r["speaker"]: r["gender"] for r in rows if int(r["age"]) >= 18}
        assert sorted(adults[s] for s in many if s.startswith("so")) == ["f"] * 5 + ["m"] * 5
        subsets = {r["speaker"]: r["subset"] for r in read_csv(more / "librispeech" / "speakers.csv")}
        assert {subsets[s] for s in many if s.startswith("ls")} == {"librispeech_test-other"}


def test_shipped_voices_model_lists_hold_out_both_sets():
    """checkpoints/adainvc-voices and adainvc-speech14 never saw a clip of either held-out set (EXPERIMENTS.md's
    protocol): their cards name these lists, and the lists hold both sets out whole."""
    lists = REPO / "recipes" / "folder" / "lists" / "adainvc-voices"
    for bundle in ("adainvc-voices", "adainvc-speech14"):
        assert f"{lists.relative_to(REPO)}/" in (REPO / "checkpoints" / bundle / "README.md").read_text()
    split = json.loads((lists / "split.json").read_text())
    assert set(split["cross_corpus"]) == {"p226", "p227", "p228", "clb"}
    held = set(split["unseen"])
    assert held == set(split["cross_corpus"]) | {"VCC2SF3", "VCC2SM3", "VCC2TF1", "VCC2TM2"}
    assert held == {r["speaker"] for r in read_csv(lists / "unseen.csv")}
    assert set(split["cross_corpus"]) <= held
    for name in ("train.csv", "valid.csv"):
        assert not held & {r["speaker"] for r in read_csv(lists / name)}


# -- VCTK, both releases, stages 0-5 ------------------------------------------------------------
@pytest.mark.slow
def test_vctk_080_recipe_prepares_and_trains(voice_corpus, tmp_path):
    root = make_vctk(voice_corpus, tmp_path / "VCTK-Corpus", "0.80")
    done = run_recipe(VCTK_RUN, "--vctk-root", root, "--stop-stage", "3", "--n-unseen", "2", "--valid-fraction",
                      "0.2", "--nj", "2", "--train-args", train_args(), *recipe_folders(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    corpus = read_csv(tmp_path / "data" / "corpus.csv")
    assert len(corpus) == 30 and all(r["path"].endswith(".wav") for r in corpus)
    assert {r["text"] for r in corpus} == set(SENTENCES)  # transcripts from txt/
    unseen = {r["speaker"] for r in read_csv(tmp_path / "data" / "unseen.csv")}
    assert sorted(VOICES[s][1] for s in unseen) == ["F", "M"]  # speaker-info.txt: one of each gender
    stats = json.loads((tmp_path / "feats" / "train" / "stats.json").read_text())
    assert stats["speakers"] == 4 and stats["utterances"] == 16
    assert_loss_went_down(tmp_path / "exp" / "adain")


@pytest.fixture(scope="module")
def vctk_092(voice_corpus, tmp_path_factory) -> Path:
    """VCTK 0.92 (microphone 2) through stages 0-2: manifests and features, shared by the training tests."""
    tmp = tmp_path_factory.mktemp("vctk092")
    root = make_vctk(voice_corpus, tmp / "VCTK-Corpus-0.92", "0.92")
    done = run_recipe(VCTK_RUN, "--vctk-root", root, "--mic", "2", "--stop-stage", "2", "--n-unseen", "2",
                      "--valid-fraction", "0.2", "--nj", "2", *recipe_folders(tmp))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return tmp


@pytest.mark.slow
def test_vctk_092_recipe_end_to_end_with_torchrun(vctk_092):
    from vc_app.bundle import load_bundle

    corpus = read_csv(vctk_092 / "data" / "corpus.csv")
    assert len(corpus) == 30 and all(r["path"].endswith("_mic2.flac") for r in corpus)
    speakers = json.loads((vctk_092 / "data" / "speakers.json").read_text())
    assert speakers["release"] == "0.92" and speakers["speakers"]["p225"]["gender"] == "F"
    utts = sorted((vctk_092 / "feats" / "all" / "utts").iterdir())
    stamps = [p.stat().st_mtime_ns for p in [*utts, vctk_092 / "feats" / "train" / "mels.npy"]]

    done = run_recipe(VCTK_RUN, "--stage", "2", "--nproc", "2", "--eval-tool", "losses", "--n-pairs", "4",
                      "--train-args", train_args(), *recipe_folders(vctk_092))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # stage 2 again: nothing re-extracted or re-packed
    assert [p.stat().st_mtime_ns for p in [*utts, vctk_092 / "feats" / "train" / "mels.npy"]] == stamps
    expdir = vctk_092 / "exp" / "adain"
    assert "2 process(es)" in done.stdout
    assert sorted(p.name for p in (expdir / "checkpoints").iterdir()) == [
        "step-00000010", "step-00000020", "step-00000030"]  # one set, from rank 0
    assert_loss_went_down(expdir)
    heldout = json.loads((expdir / "eval" / "heldout.json").read_text())
    assert heldout["pairs"] == 4 and heldout["speakers"] == 2 and heldout["steps"] == 30
    assert 0 < heldout["rec"] < 5 and -1 <= heldout["spk_cos_target"] <= 1
    bundle = load_bundle(expdir / "bundle")
    assert bundle.config["training"]["steps"] == 30
    card = (expdir / "bundle" / "README.md").read_text()
    assert "# adain: AdaIN-VC" in card and "| rec_oneshot |" in card and "CSTR VCTK Corpus" in card


@pytest.mark.slow
def test_vctk_recipe_trains_the_adversarial_config(vctk_092):
    done = run_recipe(VCTK_RUN, "--stage", "3", "--stop-stage", "3", "--config", "conf/adain_adv.yaml",
                      "--train-args", train_args(loss__adv_ramp_steps=10), *recipe_folders(vctk_092))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    expdir = vctk_092 / "exp" / "adain_adv"
    assert_loss_went_down(expdir)
    rows = train_rows(expdir)
    assert all(0 <= r["cls_acc"] <= 1 and r["adv"] > 0 for r in rows)
    assert rows[0]["weight_adv"] < rows[-1]["weight_adv"] == 0.1  # ramped up to its config weight
    assert all("cls_acc" in r for r in train_rows(expdir, "valid"))


@pytest.mark.slow
def test_vctk_recipe_trains_the_vq_config(vctk_092):
    done = run_recipe(VCTK_RUN, "--stage", "3", "--stop-stage", "3", "--config", "conf/adain_vq.yaml",
                      "--train-args", train_args(), *recipe_folders(vctk_092))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    expdir = vctk_092 / "exp" / "adain_vq"
    assert_loss_went_down(expdir)
    rows = train_rows(expdir)
    assert "kl" not in rows[-1] and rows[-1]["vq_commit"] >= 0
    assert all(r["vq_perplexity"] > 1.5 for r in rows)  # more than one code in use, every step
    assert rows[-1]["vq_usage"] * 256 >= 2


# -- the folder recipe on real speech -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_SPEECH.is_dir(), reason="../shared/data/speech is not present")
def test_folder_recipe_on_shared_speech(tmp_path):
    done = run_recipe(FOLDER_RUN, SHARED_SPEECH, "--stop-stage", "3", "--unseen", "VCC2SF3,VCC2SM3,p225,p226",
                      "--nj", "2", "--train-args", train_args(run__max_steps=10, run__valid_every=5),
                      *recipe_folders(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    speakers = json.loads((tmp_path / "data" / "speakers.json").read_text())["speakers"]
    assert len(speakers) == 22
    assert {r["speaker"] for r in read_csv(tmp_path / "data" / "unseen.csv")} == {"VCC2SF3", "VCC2SM3", "p225",
                                                                                  "p226"}
    stats = {name: json.loads((tmp_path / "feats" / name / "stats.json").read_text())
             for name in ("train", "valid", "unseen")}
    assert stats["train"]["speakers"] == 18 and stats["unseen"]["speakers"] == 4
    assert sum(s["utterances"] for s in stats.values()) >= 640  # (a few clips may be too short or silent)
    rows = train_rows(tmp_path / "exp" / "adain")
    assert len(rows) == 10 and all(r["rec"] == r["rec"] for r in rows)
    assert (tmp_path / "exp" / "adain" / "checkpoints" / "step-00000010" / "model.safetensors").is_file()


@pytest.mark.skipif(not SHARED_SPEECH.is_dir(), reason="../shared/data/speech is not present")
def test_vctk_reader_on_real_vctk_080_files(tmp_path):
    done = run_recipe(VCTK_RUN, "--vctk-root", SHARED_SPEECH / "vctk_sample", "--stop-stage", "1", "--unseen", "p227",
                      *recipe_folders(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "VCTK 0.80: 40 clips of 4 speakers" in done.stdout
    assert {r["speaker"] for r in read_csv(tmp_path / "data" / "train.csv")} == {"p225", "p226", "p228"}


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt-get install flite)")
def test_text_pairs_speak_known_sentences_for_the_unseen_speakers(tmp_path):
    """Stage 4's WER set: flite speaks the sentences; targets are clips of the manifest's (unseen) speakers."""
    rows = []
    for speaker, f0 in (("alice", 210), ("bob", 100)):
        for n in range(4):
            path = tmp_path / speaker / f"{n}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), [0.1 * ((i * f0 // 2205) % 2) for i in range(22050)], 22050)
            rows.append({"utt_id": f"{speaker}_{n}", "speaker": speaker, "path": str(path), "text": ""})
    manifest = tmp_path / "unseen.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("The birch canoe slid on the smooth planks.\nGlue the sheet to the dark blue background.\n")
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "common" / "text_pairs.py"), "--manifest",
                           str(manifest), "--voices", "slt", "--sentences", str(sentences), "--target-clips", "2",
                           "--out", "out"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    from vc_app.pairs import read_pairs
    # a relative --out: `vc-app evaluate` reads pairs.csv's paths relative to its folder, so they must still hold
    assert all(Path(p.source).is_file() for p in read_pairs(tmp_path / "out" / "pairs.csv"))
    pairs = list(csv.DictReader(open(tmp_path / "out" / "pairs.csv")))
    assert len(pairs) == 4 and {p["target_speaker"] for p in pairs} == {"alice", "bob"}
    assert {p["text"] for p in pairs} == set(sentences.read_text().splitlines())
    for pair in pairs:
        assert len(pair["target"].split(";")) == 2
        assert all(Path(t).parent.name == pair["target_speaker"] for t in pair["target"].split(";"))
        info = sf.info(pair["source"])
        assert info.samplerate == 22050 and info.duration > 1.0


def test_export_writes_paths_relative_to_the_recipe(tmp_path):
    """Stage 5 with --paths-relative-to: neither the card nor config.json names this machine's folders."""
    from vc_app.bundle import save_bundle
    from vc_app.config import MelConfig, ModelConfig
    from vc_app.models import AdaINVC

    recipe = tmp_path / "recipe"
    feats = recipe / "exp" / "feats" / "train"
    training = {"steps": 1, "config": {"data": {"train_features": str(feats)}}}
    source = save_bundle(AdaINVC(ModelConfig(c_h=8, c_speaker=8, c_bank=8)), MelConfig(), tmp_path / "ckpt",
                         training=training)
    done = subprocess.run([sys.executable, "-m", "vc_app.recipe", "export", "--checkpoint", str(source),
                           "--out", str(tmp_path / "out"), "--note", f"features in {feats}",
                           "--paths-relative-to", str(recipe)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["training"]["config"]["data"]["train_features"] == "exp/feats/train"
    assert str(tmp_path) not in (tmp_path / "out" / "config.json").read_text()
    assert str(tmp_path) not in (tmp_path / "out" / "README.md").read_text()


def test_compare_runs_pairs_two_evaluations_on_the_same_pairs(tmp_path):
    """recipes/common/compare_runs.py: B - A per pair with a bootstrap interval that excludes 0 for a real gain,
    McNemar on the discordant pairs, and pairs that failed in either run left out."""
    rng = __import__("numpy").random.default_rng(0)
    header = "source,target,sim_to_target,sim_to_source,closer_to_target,dnsmos_p808,pause_level,error\n"
    rows_a, rows_b = [header], [header]
    for i in range(60):
        base = rng.normal(0.1, 0.05)
        for rows, gain, pause in ((rows_a, 0.0, 10.0), (rows_b, 0.03, 7.0)):
            margin = base + gain + rng.normal(0, 0.005)
            pause_cell = "" if i % 3 == 0 else "nan" if i % 3 == 1 and gain else f"{pause + rng.normal(0, 1):.2f}"
            rows.append(f"s{i}.wav,t{i}.wav,{0.7 + margin / 2:.5f},{0.7 - margin / 2:.5f},{int(margin > 0)},3.2,"
                        f"{pause_cell},\n")
    rows_b.append("bad.wav,t.wav,,,,,,could not read\n")
    (tmp_path / "a.csv").write_text("".join(rows_a))
    (tmp_path / "b.csv").write_text("".join(rows_b))
    script = REPO / "recipes" / "common" / "compare_runs.py"
    said = subprocess.run([sys.executable, str(script), str(tmp_path / "a.csv"), str(tmp_path / "b.csv")],
                          capture_output=True, text=True, check=True).stdout
    assert said.startswith("60 pairs (0 left out)")
    found = re.search(r"B - A ([+-][\d.]+) \(95 % CI ([+-][\d.]+) to ([+-][\d.]+)\)", said)
    diff, low, high = map(float, found.groups())
    assert 0.025 < diff < 0.035 and 0 < low < diff < high
    assert "DNSMOS B - A +0.000" in said
    # pause levels where both runs measured one (20 of the 60: the others are empty or nan in either)
    found = re.search(r"pause level B - A ([+-][\d.]+) dB \(95 % CI ([+-][\d.]+) to ([+-][\d.]+), (\d+) pairs\)", said)
    diff, low, high, pairs = map(float, found.groups())
    assert pairs == 20 and low < diff < high < 0 and diff == pytest.approx(-3, abs=1)
    assert "tail level" not in said
    sys.path.insert(0, str(REPO / "recipes" / "common"))
    from compare_runs import mcnemar_p
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64) and mcnemar_p(3, 3) == 1.0

