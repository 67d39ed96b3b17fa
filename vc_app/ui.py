"""The web UI (Gradio Blocks): `build_demo(converter) -> gr.Blocks`, launched by `app.py`.

The page: a source clip and a target clip (each uploaded or recorded) plus optional further
target clips, model and vocoder menus, Convert; then the converted audio (play or download as
`<source>_as_<target>.wav`), log-mel pictures of source, target and result, and speaker
similarities. The conversion is the public API endpoint `/convert` (source file, target file,
then optional inputs with defaults: more target files, model, hub id, vocoder); the pictures are
drawn by a second, private step the page runs after it, so API calls return the audio alone.

The work itself is in `vc_app.ui_service` (no Gradio there); this module only lays the page out and
turns every failure into a one-sentence `gr.Error` — never a traceback on the page.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from vc_app.convert import VoiceConverter
from vc_app.errors import VcAppError
from vc_app.ui_service import (WARM_UP_NAME, Analysis, ConversionService, ConverterPool, UiLimits,
                               default_concurrency, share_threads, similarity_available, write_warm_up_clip)

log = logging.getLogger(__name__)

README = Path(__file__).resolve().parent.parent / "README.md"
TITLE = "vc_app: one-shot voice conversion"
INTRO = """# vc_app: one-shot voice conversion
Say the **source** clip's words in the **target** voice, for speakers the model never heard
(AdaIN-VC). Upload or record both, press **Convert**, or start from an example at the bottom."""
TARGET_NOTE = ("**10–30 s of target speech in total works better than 3 s.** Several clips of the same speaker "
               "are averaged into one voice.")


def how_it_works(readme_link: str | None) -> str:
    """The "How it works" panel's Markdown."""
    more = (f"More in the [README's *How it works* section]({readme_link})." if readme_link
            else "More in the *How it works* section of the project's README.md.")
    return f"""AdaIN-VC (Chou, Yeh & Lee, 2019) turns both clips into 80-band log-mel spectrograms, then:
1. A **content encoder** reads the source. **Instance normalization** after each block removes every
   channel's mean and variance over time (utterance-wide traits such as timbre), so its code keeps
   *what* is said.
2. A **speaker encoder** averages the target clip(s) over time into one speaker vector: *who* speaks.
3. A **decoder** rebuilds a spectrogram from the content code, where each **AdaIN** block,
   `AdaIN(x, s) = gamma(s) * IN(x) + beta(s)`, lets the speaker vector set those per-channel statistics.
4. A **vocoder** turns that spectrogram into sound (Griffin-Lim needs no weights; neural vocoders sound better).

{more}"""


def build_demo(converter: VoiceConverter, *, limits: UiLimits | None = None, work_dir: str | Path | None = None,
               readme_link: str | None = None, warm_up: bool = False):
    """The web UI around a loaded converter (shared by every session; other models load on demand).

    Args:
        converter: the model and vocoder loaded at start.
        limits: upload size/duration limits and the concurrency limit (None: defaults sized to the device).
        work_dir: where results are written (None: a fresh temp folder, deleted with the demo or at exit).
        readme_link: a URL of the README for the "How it works" panel (None: named in words).
        warm_up: convert and analyse a generated clip first, so the first visitor waits no longer than the
            next ones (a failure is logged, not raised).
    Returns:
        a queued `gr.Blocks`; launch it with `demo.launch(**launch_kwargs(limits))`.
    """
    import gradio as gr

    limits = limits or UiLimits()
    concurrency = limits.concurrency or default_concurrency(converter.device)
    owned = work_dir is None
    work_dir = tempfile.mkdtemp(prefix="vc_app_ui_") if owned else work_dir
    service = ConversionService(ConverterPool(converter), limits, work_dir)
    if warm_up:
        try:
            log.info("warmed up in %.1f s (one conversion and analysis of a generated clip)", service.warm_up())
        except Exception as err:  # noqa: BLE001 - the page still works; the first conversion is just slower
            log.warning("warm-up failed (%s: %s); the first conversion will be slower", type(err).__name__, err)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        page = _layout(gr, service, limits, readme_link)
        _wire(gr, service, page, concurrency)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=concurrency)
    if owned:
        weakref.finalize(demo, shutil.rmtree, work_dir, ignore_errors=True)
    return demo


def warm_up_server(url: str, work_dir: str | Path) -> float:
    """Send one conversion of a generated clip through the running server's /convert, so Gradio's own
    first-request costs (upload, queue, events) are paid before the first visitor; returns the seconds it took.

    Its result (a folder under `work_dir` holding `vc-app-warm-up_as_vc-app-warm-up.wav`) is deleted.
    """
    from gradio_client import Client, handle_file  # a dependency of gradio itself

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_warm_up_clip(Path(tmp), 22050)
        client = Client(url, verbose=False)
        try:
            client.predict(handle_file(str(clip)), handle_file(str(clip)), api_name="/convert")
        finally:
            client.close()
    for result in Path(work_dir).glob(f"*/{WARM_UP_NAME}_as_{WARM_UP_NAME}.wav"):
        shutil.rmtree(result.parent, ignore_errors=True)
    return time.perf_counter() - start


def launch_kwargs(limits: UiLimits | None = None) -> dict:
    """Keyword arguments for `demo.launch` that belong to the UI: upload limit, theme, README access."""
    import gradio as gr

    limits = limits or UiLimits()
    system_fonts = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: the page works offline
    theme = gr.themes.Default(primary_hue="indigo", font=system_fonts, font_mono=["ui-monospace", "monospace"])
    return {"max_file_size": int(limits.max_upload_mb * 1e6), "theme": theme, "ssr_mode": False,
            "allowed_paths": [str(README)] if README.is_file() else None}


def readme_url() -> str | None:
    """The README as served by the app itself (it is in `launch_kwargs`' allowed paths), if present."""
    return f"/gradio_api/file={README}" if README.is_file() else None


class _Page:
    """The page's components, by name."""

    def __init__(self, **components):
        self.__dict__.update(components)


def _layout(gr, service: ConversionService, limits: UiLimits, readme_link: str | None) -> _Page:
    choices = service.choices
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column():
            source = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Source: what is said",
                              elem_id="source")
        with gr.Column():
            target = gr.Audio(sources=["upload", "microphone"], type="filepath",
                              label="Target voice: who says it (upload or record)", elem_id="target")
            more_targets = gr.File(file_count="multiple", file_types=["audio"], height=120,
                                   label="More clips of the same voice (optional)", elem_id="more-targets")
            gr.Markdown(TARGET_NOTE)
    with gr.Row():
        model = gr.Dropdown(choices.models, value=choices.default_model, label="Model", elem_id="model")
        hub_id = gr.Textbox(value="", label="…or a Hugging Face hub id (overrides the menu)",
                            placeholder="org/name", elem_id="hub-id")
        vocoder = gr.Dropdown(choices.vocoders, value=choices.default_vocoder, allow_custom_value=True,
                              label="Vocoder (or type griffinlim:N)", elem_id="vocoder")
    if choices.unusable_vocoders:
        gr.Markdown("\n".join(f"- *{spec}* is unavailable: {reason}"
                              for spec, reason in choices.unusable_vocoders.items()), elem_id="vocoder-notes")
    gr.Markdown(f"Limits: files up to {limits.max_upload_mb:g} MB and clips up to {limits.max_seconds:g} s.")
    button = gr.Button("Convert", variant="primary", elem_id="convert")
    output = gr.Audio(type="filepath", label="Converted", interactive=False, buttons=["download"],
                      elem_id="converted")
    with gr.Row():
        pictures = [gr.Image(label=name, type="numpy", format="png", interactive=False, buttons=["fullscreen"],
                             elem_id=f"mel-{name.lower()}") for name in ("Source", "Target", "Converted")]
    similarity = gr.Markdown(elem_id="similarity")
    conversion = gr.State()
    _examples(gr, source, target)
    with gr.Accordion("How it works", open=False, elem_id="how-it-works"):
        gr.Markdown(how_it_works(readme_link))
    return _Page(source=source, target=target, more_targets=more_targets, model=model, hub_id=hub_id,
                 vocoder=vocoder, button=button, output=output, pictures=pictures, similarity=similarity,
                 conversion=conversion)


def _examples(gr, source, target) -> None:
    from vc_app.examples import example_pairs

    pairs = example_pairs()
    if pairs:
        gr.Examples([[str(s), str(t)] for s, t, _ in pairs], inputs=[source, target],
                    example_labels=[what for _, _, what in pairs],
                    label="Examples (made with espeak-ng and flite voices): click one, then Convert")


def _wire(gr, service: ConversionService, page: _Page, concurrency: int) -> None:
    """The events: /convert (public API) and, after it succeeds, the private analysis step."""
    default_model, default_vocoder = service.choices.default_model, service.choices.default_vocoder

    def convert(source: str, target: str, more_targets: list[str] | None = None, model: str = default_model,
                hub_id: str = "", vocoder: str = default_vocoder, progress=gr.Progress()):
        """Convert `source` into the voice of the target clip(s); returns the converted WAV."""
        clips = ([target] if target else []) + list(more_targets or [])
        done = _user_errors(gr, service.convert, source, clips, model=model, hub_id=hub_id, vocoder=vocoder,
                            progress=lambda fraction, text: progress(fraction, desc=text))
        return str(done.output), done

    def analyse(conversion, progress=gr.Progress()):
        if conversion is None:
            return None, None, None, ""
        result = _user_errors(gr, service.analyse, conversion,
                              progress=lambda fraction, text: progress(fraction, desc=text))
        images = [gr.Image(value=picture, label=label) for label, picture in result.pictures]
        return (*images, similarity_markdown(result))

    page.button.click(lambda: (None, None, None, ""), outputs=[*page.pictures, page.similarity], queue=False,
                      api_visibility="private")  # no stale pictures beside a new result (or a new error)
    event = page.button.click(
        convert, inputs=[page.source, page.target, page.more_targets, page.model, page.hub_id, page.vocoder],
        outputs=[page.output, page.conversion], api_name="convert", concurrency_limit=concurrency,
        concurrency_id="convert")
    event.success(analyse, inputs=[page.conversion], outputs=[*page.pictures, page.similarity],
                  api_visibility="private", concurrency_limit=concurrency, concurrency_id="convert",
                  show_progress="minimal")


def _user_errors(gr, fn, *args, **kwargs):
    """Run fn; a VcAppError becomes its sentence on the page, anything else a short sentence (traceback in the log)."""
    try:
        return fn(*args, **kwargs)
    except VcAppError as err:
        raise gr.Error(str(err), print_exception=False) from None
    except Exception as err:  # noqa: BLE001 - the page must get a sentence, not a traceback
        log.exception("the web UI's %s failed", getattr(fn, "__name__", "step"))
        raise gr.Error(f"Something went wrong on the server ({type(err).__name__}); the server log has the "
                       f"details.", print_exception=False) from None


def similarity_markdown(analysis: Analysis) -> str:
    """The similarity numbers as a small table (or the note saying how to get them)."""
    sims = analysis.similarity
    if sims is None:
        return analysis.note
    verdict = ("closer to the target than to the source" if sims["converted_vs_target"] > sims["converted_vs_source"]
               else "still closer to the source than to the target")
    return (f"**Speaker similarity** (cosine of Resemblyzer d-vectors, 1 = same voice): the result is {verdict}.\n\n"
            f"| pair | similarity |\n|---|---|\n"
            f"| converted ↔ target | {sims['converted_vs_target']:.3f} |\n"
            f"| converted ↔ source | {sims['converted_vs_source']:.3f} |\n"
            f"| source ↔ target (before) | {sims['source_vs_target']:.3f} |")


__all__ = ["UiLimits", "build_demo", "default_concurrency", "launch_kwargs", "readme_url", "share_threads",
           "similarity_available", "warm_up_server"]
