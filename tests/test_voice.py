"""Voice files: same output as the clips they were made from, refused when foreign, damaged or made by another
model; names that cannot escape the voices folder; blends that interpolate AdaIN's statistics; the CLI."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SHARED_SPEECH, make_bundle, run_cli, synthetic_speech

FAST = ("--vocoder", "griffinlim:2", "--device", "cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A source and two target speakers (two clips for the first), generated at 22.05 and 16 kHz."""
    root = tmp_path_factory.mktemp("clips")
    specs = {"source": (2.0, 22050, 130, 1), "alice1": (1.5, 22050, 210, 2), "alice2": (1.2, 16000, 220, 3),
             "bob": (1.5, 22050, 95, 4)}
    for name, (seconds, rate, f0, seed) in specs.items():
        sf.write(str(root / f"{name}.wav"), synthetic_speech(seconds, rate, f0=f0, seed=seed), rate)
    return {name: root / f"{name}.wav" for name in specs}


@pytest.fixture(scope="module")
def converter(tiny_bundle):
    from vc_app.converter import VoiceConverter

    return VoiceConverter.from_specs(str(tiny_bundle), "griffinlim:2", device="cpu")


@pytest.fixture(scope="module")
def alice(converter, clips, tmp_path_factory):
    """alice.voice made from two clips: (path, Voice)."""
    voice = converter.voice([clips["alice1"], clips["alice2"]], name="alice")
    return voice.save(tmp_path_factory.mktemp("voices") / "alice.voice"), voice


# -- the file and bit-identical conversion ---------------------------------------------------------
def test_converting_with_a_voice_file_equals_converting_with_its_clips(converter, clips, alice):
    from vc_app.targets import load_target
    from vc_app.voice import Voice

    path, _ = alice
    by_clips = converter.convert(clips["source"], converter.voice([clips["alice1"], clips["alice2"]]))
    for voice in (Voice.load(path), load_target([str(path)], converter.voice)):
        assert torch.equal(converter.convert(clips["source"], voice), by_clips)  # bit-identical
    assert 0 < path.stat().st_size < 8000  # a few KB


def test_voice_file_records_model_clips_and_format(converter, alice):
    from safetensors import safe_open

    path, voice = alice
    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata()
        assert sorted(handle.keys()) == ["speaker"]
    assert meta["format"] == "vc_app.voice" and meta["format_version"] == "1" and meta["name"] == "alice"
    assert meta["model"] == "tiny" and meta["model_sha256"] == converter.model_sha256
    assert [c["name"] for c in json.loads(meta["clips"])] == ["alice1.wav", "alice2.wav"]
    assert abs(float(meta["seconds"]) - voice.seconds) < 0.01 and 2.0 < voice.seconds <= 2.7
    assert json.loads(meta["mel"])["sample_rate"] == 22050 and meta["created_at"].endswith("Z")


def test_a_voice_of_another_model_is_refused_naming_both_models(alice, clips, tmp_path):
    from vc_app.converter import VoiceConverter
    from vc_app.errors import VcAppError
    from vc_app.voice import Voice

    other = VoiceConverter.from_specs(str(make_bundle(tmp_path / "other", seed=1)), "griffinlim:2", device="cpu")
    with pytest.raises(VcAppError) as err:
        other.convert(clips["source"], Voice.load(alice[0]))
    text = str(err.value)
    assert "made with the model tiny" in text and "not with the model other" in text and "\n" not in text
    assert alice[1].model_sha256[:12] in text and other.model_sha256[:12] in text


def _voice_bytes(path, **changes) -> bytes:
    """The voice file re-written with header entries changed (None: removed) or tensors replaced."""
    from safetensors import safe_open
    from safetensors.numpy import save

    with safe_open(str(path), framework="numpy") as handle:
        meta, tensors = dict(handle.metadata()), {k: handle.get_tensor(k) for k in handle.keys()}
    for key, value in changes.items():
        if isinstance(value, np.ndarray):
            tensors[key] = value
        elif value is None:
            del meta[key]
        else:
            meta[key] = value
    return save(tensors, metadata=meta)


@pytest.mark.parametrize("case,message", [
    ("missing", "does not exist"),
    ("folder", "is not a file"),
    ("empty", "is not a vc_app voice file, or it is damaged or truncated"),
    ("truncated", "is not a vc_app voice file, or it is damaged or truncated"),
    ("random", "is not a vc_app voice file, or it is damaged or truncated"),
    ("json", "is not a vc_app voice file, or it is damaged or truncated"),
    ("bundle", "is not a vc_app voice file (its header does not say format vc_app.voice)"),
    ("version", "is a voice file of format version '2'; this vc_app reads version 1"),
    ("no_model", "is a damaged voice file (no 'model_sha256' entry)"),
    ("bad_clips", "is a damaged voice file"),
    ("bad_mel", "is a damaged voice file (its mel recipe holds values that are not numbers)"),
    ("nan", "is a damaged voice file (its speaker vector holds NaN"),
    ("float64", "is a damaged voice file (no float32 speaker vector in it)"),
])
def test_damaged_or_foreign_files_get_one_sentence(alice, tiny_bundle, tmp_path, case, message):
    from vc_app.errors import VcAppError
    from vc_app.voice import Voice

    good = alice[0]
    path = tmp_path / f"{case}.voice"
    content = {
        "empty": b"", "truncated": good.read_bytes()[:-7], "random": os.urandom(2000),
        "json": json.dumps({"format": "vc_app.voice"}).encode(),
        "bundle": (tiny_bundle / "model.safetensors").read_bytes(),
        "version": _voice_bytes(good, format_version="2"), "no_model": _voice_bytes(good, model_sha256=None),
        "bad_clips": _voice_bytes(good, clips="[{]"),
        "bad_mel": _voice_bytes(good, mel=json.dumps({"sample_rate": "22050"})),
        "nan": _voice_bytes(good, speaker=np.full(8, np.nan, np.float32)),
        "float64": _voice_bytes(good, speaker=np.ones(8, np.float64)),
    }
    if case == "folder":
        path.mkdir()
    elif case != "missing":
        path.write_bytes(content[case])
    with pytest.raises(VcAppError) as err:
        Voice.load(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize("name,message", [
    ("../x", "looks like a path"), ("/etc/passwd", "looks like a path"), ("a\\b", "looks like a path"),
    ("a\x00b", "control character (such as NUL)"), ("x" * 65, "at most 64 characters"), ("", "Give the voice a name"),
    (".hidden", "not allowed"), ("con", "not allowed"), ("a*b", "not allowed"), ("name.", "not allowed"),
])
def test_unsafe_voice_names_are_refused(name, message, tmp_path):
    from vc_app.errors import VcAppError
    from vc_app.voice_library import VoiceLibrary

    with pytest.raises(VcAppError, match=message.replace("(", r"\(").replace(")", r"\)")):
        VoiceLibrary(tmp_path).path(name)
    assert list(tmp_path.iterdir()) == []


def test_plain_names_stay_inside_the_voices_folder(tmp_path):
    from vc_app.voice_library import VoiceLibrary

    library = VoiceLibrary(tmp_path / "voices")
    for name in ("alice", "Zoë 2", "bob (studio)", "x" * 64, "o'brien-v1.2"):
        assert library.path(name).parent == tmp_path / "voices"
    assert not library.folder.exists()  # the folder is made only by a save


def test_saving_is_atomic_and_never_replaces_without_overwrite(alice, tmp_path, monkeypatch):
    from vc_app.errors import VcAppError
    from vc_app.voice import Voice
    from vc_app.voice_library import VoiceLibrary

    _, voice = alice
    library = VoiceLibrary(tmp_path / "voices")
    first = library.save(voice, "alice")
    before = first.read_bytes()
    with pytest.raises(VcAppError, match="already exists; pass --overwrite"):
        library.save(Voice.load(first), "alice")
    assert first.read_bytes() == before
    library.save(voice, "alice", overwrite=True)
    assert sorted(p.name for p in library.folder.iterdir()) == ["alice.voice"]

    def power_cut(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError):
        library.save(voice, "bob")
    with pytest.raises(OSError):
        library.save(voice, "alice", overwrite=True)
    assert sorted(p.name for p in library.folder.iterdir()) == ["alice.voice"]  # no temp file, no partial bob
    assert Voice.load(first).name == "alice"


# -- blends -----------------------------------------------------------------------------------------
def test_blend_weights_are_validated_and_normalised():
    from vc_app.errors import VcAppError
    from vc_app.voice import blend_weights

    assert blend_weights([3, 1]) == [0.75, 0.25] and blend_weights([0, 2]) == [0.0, 1.0]
    for bad, message in (([-0.5, 1], "non-negative"), ([0, 0], "above zero"), ([float("nan")], "non-negative"),
                         ([float("inf"), 1], "non-negative"), ([], "at least one voice")):
        with pytest.raises(VcAppError, match=message):
            blend_weights(bad)


def test_a_100_0_blend_is_the_pure_voice_exactly(converter, clips, alice):
    from vc_app.voice import Voice, blend

    path, voice = alice
    pure = blend([Voice.load(path), converter.voice([clips["bob"]])], [1.0, 0.0])
    assert torch.equal(pure.vector, voice.vector)
    assert torch.equal(converter.convert(clips["source"], pure), converter.convert(clips["source"], voice))


def test_a_blend_interpolates_every_adain_layers_statistics(converter, clips, alice):
    from vc_app.models.blocks import AdaIN
    from vc_app.voice import blend

    _, voice = alice
    bob = converter.voice([clips["bob"]])
    mixed = blend([voice, bob], [3, 7])  # weights normalised to 0.3 / 0.7
    assert [w for _, w in mixed.mix] == pytest.approx([0.3, 0.7]) and mixed.name == "30% alice + 70% bob"
    layers = [m for m in converter.model.modules() if isinstance(m, AdaIN)]
    assert layers
    for layer in layers:
        (g_a, b_a), (g_b, b_b), (g_m, b_m) = (layer.style(v.vector[None]) for v in (voice, bob, mixed))
        assert torch.allclose(g_m, 0.3 * g_a + 0.7 * g_b, atol=1e-5)
        assert torch.allclose(b_m, 0.3 * b_a + 0.7 * b_b, atol=1e-5)


def test_voices_of_different_models_cannot_be_blended(alice, clips, tmp_path):
    from vc_app.converter import VoiceConverter
    from vc_app.errors import VcAppError
    from vc_app.voice import blend

    other = VoiceConverter.from_specs(str(make_bundle(tmp_path / "other", seed=1)), "griffinlim:2", device="cpu")
    with pytest.raises(VcAppError, match="made with different models"):
        blend([alice[1], other.voice([clips["bob"]])], [0.5, 0.5])


def test_mix_syntax_takes_voice_files_or_clip_sets_with_optional_weights(tmp_path):
    from vc_app.errors import VcAppError
    from vc_app.targets import parse_mix

    assert parse_mix("alice.voice:0.7") == parse_mix(" alice.voice:.7 ")
    assert parse_mix("alice.voice:0.7").targets == ("alice.voice",) and parse_mix("alice.voice:0.7").weight == 0.7
    both = parse_mix("bob1.wav;bob2.flac:30")
    assert both.targets == ("bob1.wav", "bob2.flac") and both.weight == 30
    assert parse_mix("bob.voice").weight == 1.0
    odd = tmp_path / "take:2.voice"  # a ':' in an existing file name is not a weight
    odd.write_bytes(b"")
    assert parse_mix(str(odd)).targets == (str(odd),)
    for bad in ("alice.voice:-1", ":0.5", "alice.voice:nan"):
        with pytest.raises(VcAppError):
            parse_mix(bad)


def test_a_target_is_clips_or_one_voice_not_both(converter, clips, alice):
    from vc_app.errors import VcAppError
    from vc_app.targets import load_target

    with pytest.raises(VcAppError, match="either audio clips or one voice file"):
        load_target([alice[0], clips["bob"]], converter.voice)


# -- the command line ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_create_list_show_and_convert_with_a_voice(tiny_bundle, clips, tmp_path):
    voices = tmp_path / "voices"
    env = {"VC_APP_VOICES_DIR": str(voices)}
    model = ("--checkpoint", str(tiny_bundle), "--device", "cpu")
    targets = ("--target", str(clips["alice1"]), "--target", str(clips["alice2"]))
    done = run_cli("voice", "create", "alice", *targets, *model, env=env)
    assert done.returncode == 0, done.stderr
    assert (voices / "alice.voice").is_file() and "2 clips" in done.stdout
    again = run_cli("voice", "create", "alice", "--target", str(clips["bob"]), *model, env=env)
    assert again.returncode == 1 and "already exists; pass --overwrite" in again.stderr
    bad = run_cli("voice", "create", "../escape", *targets, *model, env=env)
    assert bad.returncode == 1 and "looks like a path" in bad.stderr and not (tmp_path / "escape.voice").exists()
    listed = run_cli("voice", "list", env=env)
    assert listed.returncode == 0 and "alice" in listed.stdout and "tiny" in listed.stdout
    shown = run_cli("voice", "show", "alice.voice", env=env)  # a bare file name is found in the voices folder
    assert shown.returncode == 0 and "alice1.wav" in shown.stdout and "weights sha256" in shown.stdout

    by_clips, by_voice, by_mix = (tmp_path / f"{n}.wav" for n in ("clips", "voice", "mix"))
    run_cli("convert", "--source", str(clips["source"]), *targets, "--output", str(by_clips), *model, *FAST[:2],
            env=env)
    done = run_cli("convert", "--source", str(clips["source"]), "--target", "alice.voice", "--output", str(by_voice),
                   *model, *FAST[:2], env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli("convert", "--source", str(clips["source"]), "--mix", "alice.voice:1", "--mix",
                   f"{clips['bob']}:0", "--output", str(by_mix), *model, *FAST[:2], env=env)
    assert done.returncode == 0, done.stderr
    assert by_voice.read_bytes() == by_clips.read_bytes() == by_mix.read_bytes()


@pytest.mark.slow
def test_cli_batch_takes_voice_files_in_folder_mode_and_in_a_manifest(tiny_bundle, clips, alice, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(str(inputs / "a.wav"), synthetic_speech(1.0, 22050, seed=7), 22050)
    model = ("--checkpoint", str(tiny_bundle), *FAST, "--quiet")
    done = run_cli("batch", str(inputs), "--target", str(alice[0]), "--output", str(tmp_path / "out"), *model)
    assert done.returncode == 0 and "1 converted" in done.stdout, done.stderr
    blended = run_cli("batch", str(inputs), "--mix", f"{alice[0]}:0.5", "--mix", f"{clips['bob']}:0.5",
                      "--output", str(tmp_path / "blend"), *model)
    assert blended.returncode == 0 and "1 converted" in blended.stdout, blended.stderr
    manifest = tmp_path / "pairs.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("source", "target"), ("in/a.wav", str(alice[0]))])
    done = run_cli("batch", "--manifest", str(manifest), "--output", str(tmp_path / "m"), *model)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m" / "a_as_alice.wav").read_bytes() == (tmp_path / "out" / "a.wav").read_bytes()
    assert (tmp_path / "blend" / "a.wav").read_bytes() != (tmp_path / "out" / "a.wav").read_bytes()
    other = make_bundle(tmp_path / "other", seed=1)
    refused = run_cli("batch", str(inputs), "--target", str(alice[0]), "--output", str(tmp_path / "o2"),
                      "--checkpoint", str(other), *FAST, "--quiet")
    assert refused.returncode == 1 and "made with the model tiny" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_evaluate_pairs_take_a_voice_file_with_its_d_vector(converter, clips, tmp_path):
    pytest.importorskip("resemblyzer", reason="the eval extra is not installed")
    from vc_app.errors import VcAppError
    from vc_app.evaluate.runner import evaluate
    from vc_app.evaluate.similarity import attach_dvector
    from vc_app.pairs import check_pair_audio, read_pairs

    voice = converter.voice([clips["alice1"], clips["alice2"]], name="alice")
    voice.save(tmp_path / "plain.voice")
    attach_dvector(voice, [clips["alice1"], clips["alice2"]]).save(tmp_path / "alice.voice")
    pairs_csv = tmp_path / "pairs.csv"
    with open(pairs_csv, "w", newline="") as handle:
        csv.writer(handle).writerows([("source", "target"), (str(clips["source"]), "alice.voice"),
                                      (str(clips["bob"]), "alice.voice")])
    pairs = read_pairs(pairs_csv)
    assert pairs[0].target_speaker == "alice"
    check_pair_audio(pairs)
    summary = evaluate(pairs, converter, tmp_path / "eval", progress=False)
    assert summary["pairs"]["failed"] == 0 and -1 <= summary["speaker_similarity"]["mean_sim_to_target"] <= 1
    with pytest.raises(VcAppError, match="Pair 1: plain.voice carries no Resemblyzer d-vector"):
        check_pair_audio([pairs[0].__class__(str(clips["source"]), (str(tmp_path / "plain.voice"),))])


@pytest.mark.slow
def test_a_50_50_blend_of_two_real_voices_lands_between_them():
    """The shipped model on real held-out speakers (VCC2SM3 male, VCC2TF1 female): the blended conversion's
    Resemblyzer similarity to each speaker lies between the two pure conversions' (bench/voice_blend.py: more)."""
    pytest.importorskip("resemblyzer", reason="the eval extra is not installed")
    from vc_app.bundle import default_checkpoint
    from vc_app.converter import VoiceConverter
    from vc_app.evaluate.similarity import SpeakerSimilarity, cosine
    from vc_app.voice import blend

    corpus = SHARED_SPEECH / "vcc2018"
    if not corpus.is_dir() or not os.path.isdir(default_checkpoint()):
        pytest.skip("needs ../shared/data/speech and the shipped checkpoint")
    converter = VoiceConverter.from_specs(None, "griffinlim:8", device="cpu")
    similarity = SpeakerSimilarity("cpu")
    speakers = ("VCC2SM3", "VCC2TF1")
    voices = [converter.voice([str(corpus / s / f"3000{n}.flac") for n in (1, 2, 3)]) for s in speakers]
    references = [similarity.embed_speaker([str(corpus / s / f"300{n}.flac") for n in range(10, 15)])
                  for s in speakers]
    sources = [str(corpus / s / "30021.flac") for s in ("VCC2SF3", "VCC2TM2")]
    mean = {}
    for share in (1.0, 0.5, 0.0):
        voice = blend(voices, [share, 1 - share])
        embeddings = [similarity.embed(converter.convert(src, voice), converter.sample_rate) for src in sources]
        mean[share] = [np.mean([cosine(e, ref) for e in embeddings]) for ref in references]
    for k in (0, 1):  # similarity to the male, then to the female speaker
        low, high = sorted((mean[1.0][k], mean[0.0][k]))
        assert low < mean[0.5][k] < high, mean
