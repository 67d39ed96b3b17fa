"""The documentation stays true: the README is a user's page, every relative link and anchor resolves, every
command in a code block of the README and docs/ is one its program accepts, and the Python examples run."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import soundfile as sf

from conftest import REPO, synthetic_speech

README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]  # their commands and examples are checked
LINKED = [*DOCS, REPO / "ARCHITECTURE.md", *sorted((REPO / "recipes").glob("*/README.md"))]  # their links
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# Programs a command may start with that are not ours to check (installers, other tools).
OTHER_PROGRAMS = {".", "cat", "git", "sudo", "tensorboard", "pip", ".venv/bin/pip", ".venv/bin/ruff", ".venv/bin/mypy"}


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of each fenced code block."""
    return FENCE.findall(path.read_text())


def without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: formatting and link targets dropped, lower case, punctuation other
    than '-' and '_' removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_readme_is_a_users_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move reference material into docs/"


def test_readme_has_exactly_two_set_up_commands_and_ci_runs_the_test_one_verbatim():
    section = README.read_text().split("\n## Set-up: two commands\n", 1)[1].split("\n## ", 1)[0]
    blocks = FENCE.findall(section)
    assert [lang for lang, _ in blocks] == ["bash", "bash"], "the set-up shows two commands, no more"
    start_ui, run_tests = (text.strip() for _, text in blocks)
    assert "\n" not in start_ui and "\n" not in run_tests  # one line each
    assert start_ui.endswith("app.py") and run_tests.endswith("-m pytest")
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == run_tests  # .ci/run ends with the README's test command, verbatim


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(path):
    broken = []
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", without_code(path.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, broken


# -- commands ---------------------------------------------------------------------------------------------------
def commands(text: str) -> list[list[str]]:
    """The commands of a shell code block as argument lists: continuation lines joined, comments dropped, split
    at && ; | &, leading VAR=value assignments dropped and ${VAR} replaced by 1."""
    text = re.sub(r"\\\n\s*", " ", text)
    out: list[list[str]] = []
    for line in text.splitlines():
        lexer = shlex.shlex(re.sub(r"\$\{\w+\}", "1", line), posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token in {"&&", ";", "|", "&", "||"}:
                while current and re.fullmatch(r"[A-Z_]+=\S*", current[0]):
                    current.pop(0)
                if current:
                    out.append(current)
                current = []
            else:
                current.append(token)
    return out


def shell_commands() -> list[tuple[str, list[str]]]:
    return [(f"{path.relative_to(REPO)}: {shlex.join(command)}", command)
            for path in DOCS for lang, text in code_blocks(path) if lang in ("bash", "sh")
            for command in commands(text)]


def parses(parser, args: list[str]) -> str | None:
    """None when `parser` accepts `args`, else argparse's complaint."""
    try:
        parser.parse_args(args)
    except SystemExit as done:
        return None if done.code == 0 else f"rejected by {parser.prog}"
    return None


@cache
def script_parser(path: Path):
    """The `get_parser()` of a script in the checkout (app.py, bench/*.py), imported without running it."""
    sys.path[:0] = [str(path.parent), str(REPO)]
    try:
        spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        del sys.path[:2]
    return module.get_parser()


def extras_of_pyproject() -> list[str]:
    """The names under [project.optional-dependencies] (read without tomllib, which Python 3.10 lacks)."""
    section = (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return re.findall(r"^(\w+)\s*=", section, re.M)


@cache
def recipe_options(run_sh: Path) -> str:
    done = subprocess.run(["bash", str(run_sh), "--help"], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def check_command(args: list[str]) -> str | None:
    """None when the command is one its program accepts (or a program that is not ours), else why not."""
    program, rest = args[0], args[1:]
    if program in OTHER_PROGRAMS:
        if program.endswith("pip") and rest[:1] == ["install"]:
            extras = {e for arg in rest for e in re.findall(r"\.\[([\w,]+)\]", arg) for e in e.split(",")}
            known = set(extras_of_pyproject())
            return f"unknown extras {extras - known}" if extras - known else None
        return None
    if program in ("vc-app", ".venv/bin/vc-app"):
        from vc_app.cli import get_parser

        return parses(get_parser(), rest)
    if program.endswith("run.sh"):
        run_sh = REPO / program
        if not run_sh.is_file():
            return f"no {program}"
        unknown = [a for a in rest if re.fullmatch(r"--[a-z][a-z-]*", a) and a not in recipe_options(run_sh)]
        return f"{program} has no {unknown}" if unknown else None
    if re.fullmatch(r"(\.venv/bin/)?python3?", program):
        if rest[:2] == ["-m", "venv"]:
            return None
        if rest[:2] == ["-m", "pytest"]:
            missing = [a for a in rest[2:] if a.startswith("tests/") and not (REPO / a.split("::")[0]).exists()]
            return f"no {missing}" if missing else None
        script = REPO / rest[0]
        if not script.is_file():
            return f"no {rest[0]}"
        if rest[0] == "app.py" or rest[0].startswith("bench/"):
            return parses(script_parser(script), rest[1:])
        return None  # another script of the checkout (e.g. recipes/common/tiny_corpus.py): it exists
    return f"a program the docs test does not know: {program} (check it in tests/test_docs.py)"


def test_every_command_in_the_docs_is_accepted_by_its_program():
    found = shell_commands()
    assert len(found) > 30  # the README and docs/ show many; a parsing slip would find none
    wrong = [f"{where} -> {why}" for where, command in found if (why := check_command(command))]
    assert not wrong, "\n".join(wrong)


def test_the_command_checker_refuses_what_is_wrong():
    assert check_command(["vc-app", "convert", "--source", "a.wav", "--no-such-option"])
    assert check_command(["python", "bench/convert_speed.py", "--no-such-option"])
    assert check_command(["recipes/folder/run.sh", "--no-such-option"])
    assert check_command(["frobnicate", "--now"])
    assert check_command([".venv/bin/pip", "install", "-e", ".[test,nope]"])
    assert check_command(["vc-app", "voice", "list"]) is None


# -- Python examples ----------------------------------------------------------------------------------------------
def python_examples() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(REPO)}, example {i + 1}", text) for path in DOCS
            for i, (lang, text) in enumerate(b for b in code_blocks(path) if b[0] == "python")]


def audio_inputs(example: str) -> set[str]:
    """The audio file names an example reads: every string naming a clip, less those it writes (the third
    argument of a `convert` call, or its `output=`)."""
    tree = ast.parse(example)
    names = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and re.fullmatch(r"[\w./-]+\.(wav|flac|ogg)", n.value)}
    written = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if getattr(call.func, "attr", getattr(call.func, "id", None)) == "convert":
            out = [*call.args[2:3], *(k.value for k in call.keywords if k.arg == "output")]
            written |= {o.value for o in out if isinstance(o, ast.Constant)}
    return names - written


@pytest.mark.parametrize("where,example", [e for e in python_examples() if "gradio_client" not in e[1]],
                         ids=lambda v: v if isinstance(v, str) and "example" in v else "")
def test_python_example_runs(where, example, tiny_bundle, tmp_path, monkeypatch):
    """Each example runs as written, in a folder holding the clips it names, with the tiny model and a fast
    vocoder standing in for the shipped ones (test_front_door runs the README's first one on the real model)."""
    from vc_app.converter import VoiceConverter

    for i, name in enumerate(sorted(audio_inputs(example))):
        sf.write(str(tmp_path / name), synthetic_speech(1.5, 22050, f0=110 + 30 * i, seed=i), 22050)
    real = VoiceConverter.from_specs.__func__
    monkeypatch.setattr(VoiceConverter, "from_specs", classmethod(
        lambda cls, checkpoint=None, vocoder=None, **kw: real(cls, str(tiny_bundle), "griffinlim:2", **kw)))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, where, "exec"), {})  # noqa: S102 - the docs' own code


@pytest.mark.slow
def test_web_api_example_names_real_inputs(tiny_bundle, tmp_path):
    """The README's gradio_client example: every input it names is an input of the /convert endpoint."""
    from vc_app.converter import VoiceConverter
    from vc_app.ui import build_demo

    examples = [text for _, text in python_examples() if "gradio_client" in text]
    assert examples
    demo = build_demo(VoiceConverter.from_specs(str(tiny_bundle), "griffinlim:2", device="cpu"), work_dir=tmp_path)
    endpoint = demo.get_api_info()["named_endpoints"]["/convert"]
    inputs = {p["parameter_name"] for p in endpoint["parameters"]}
    for example in examples:
        calls = [n for n in ast.walk(ast.parse(example)) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and n.func.attr == "predict"]
        assert calls
        for call in calls:
            names = {k.arg for k in call.keywords} - {"api_name"}
            assert names <= inputs, names - inputs
            assert {k.value.value for k in call.keywords if k.arg == "api_name"} == {"/convert"}


# -- bench results ------------------------------------------------------------------------------------------------
def test_a_bench_run_appends_its_printout_with_the_machine(tmp_path, monkeypatch):
    """Bench numbers live in bench/results/<bench>.md, written by the benches: each run appends what it printed
    under a heading with the date and a line naming the machine; a failed run appends nothing."""
    spec = importlib.util.spec_from_file_location("_docs_bench_results", REPO / "bench" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    monkeypatch.setenv(results.ENV, str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["bench/fake.py", "--rounds", "2"])
    for value in ("1.5x", "1.6x"):
        with results.recorded("bench/fake.py"):
            print(f"pipeline: {value} real time")
    with pytest.raises(RuntimeError), results.recorded("bench/fake.py"):
        print("half a run")
        raise RuntimeError("interrupted")
    text = (tmp_path / "fake.md").read_text()
    assert text.count("\n## ") == 2 and text.count("Machine: ") == 2 and "half a run" not in text
    assert text.index("1.5x") < text.index("1.6x") and "`python bench/fake.py --rounds 2`" in text
    assert f"{os.cpu_count()} cores" in text
    benches = sorted(p for p in (REPO / "bench").glob("*.py") if p.name != "results.py")
    assert all("recorded(__file__)" in p.read_text() for p in benches), "every bench records its runs"
