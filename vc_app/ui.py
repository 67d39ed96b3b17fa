"""The web UI (Gradio Blocks): `build_demo(converter) -> gr.Blocks`, launched by `app.py`.

The page: a source clip and a target clip (each uploaded or recorded) plus optional further
target clips, a Voices panel (keep the target clips as a named voice, pick a saved voice instead
of uploading, blend two saved voices, delete one), model and vocoder menus, Convert; then the
converted audio (play or download as `<source>_as_<target>.wav`), log-mel pictures of source,
target and result, and speaker similarities. The conversion is the public API endpoint `/convert`
(source file, target file, then optional inputs with defaults: more target files, model, hub id,
vocoder, saved voice, voice to blend with, share of the first voice); the pictures are drawn by a
second, private step the page runs after it, so API calls return the audio alone.

A second tab, *Live*, streams the browser's microphone to the server (Gradio's streaming `gr.Audio`), through a
`vc_app.ui_service.LiveSession` (one streaming converter per browser session) and back to a streaming `gr.Audio`,
with the latency it measures.

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
from types import SimpleNamespace

from vc_app.converter import VoiceConverter
from vc_app.errors import VcAppError
from vc_app.ui_service import (
    AUTO_VOCODER,
    STREAM_EVERY,
    WARM_UP_NAME,
    Analysis,
    ConversionService,
    ConverterPool,
    LiveSession,
    UiLimits,
    VoiceExists,
    default_concurrency,
    share_threads,
    similarity_available,
    write_warm_up_clip,
)

log = logging.getLogger(__name__)

README = Path(__file__).resolve().parent.parent / "README.md"
TITLE = "vc_app: one-shot voice conversion"
INTRO = """# vc_app: one-shot voice conversion
Say the **source** clip's words in the **target** voice, for speakers the model never heard
(AdaIN-VC). Upload or record both, press **Convert**, or start from an example at the bottom."""
TARGET_NOTE = ("**10–30 s of target speech in total works better than 3 s.** Several clips of the same speaker "
               "are averaged into one voice.")
VOICES_NOTE = ("Keep the target clips above as a named voice, then pick it on any later visit instead of uploading "
               "again. A picked voice is used **instead of** the target clips; blending mixes two saved voices' "
               "speaker vectors. Voices are kept on this server only, for the model they were made with.")
NO_VOICE, NO_BLEND = ("none: use the target clips", ""), ("none", "")
NO_LIVE_VOICE = ("none: use the clips beside", "")
LIVE_NOTE = """Speak into the microphone and hear yourself in the target voice, a fraction of a second later: the
browser streams the microphone to this server, which converts it block by block (`vc-app live`'s engine) and
streams it back. Pick a saved voice or give clips of the target, press **Record**, and use headphones (speakers
would feed the conversion back into the microphone). A stream stops after {seconds:g} s."""
# Measured in the browser: how far the output player's buffer runs ahead of what it plays, i.e. what it adds.
PLAYER_BUFFER_JS = """
const show = () => {
  const audio = document.querySelector('#live-out audio');
  const ranges = audio && audio.buffered;
  if (!ranges || !ranges.length || audio.paused) { return; }
  const ahead = ranges.end(ranges.length - 1) - audio.currentTime;
  element.textContent = `The browser's player holds ${Math.round(ahead * 1000)} ms of converted audio ahead of ` +
    `what it plays: that much more latency, on top of the server's above.`;
};
setInterval(show, 500);
"""


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
4. A **vocoder** turns that spectrogram into sound: by default HiFi-GAN universal, a neural vocoder that
   works offline; Griffin-Lim is faster and sounds phasey.

{more}"""


def build_demo(converter: VoiceConverter, *, limits: UiLimits | None = None, work_dir: str | Path | None = None,
               readme_link: str | None = None, voices_dir: str | Path | None = None, warm_up: bool = False):
    """The web UI around a loaded converter (shared by every session; other models load on demand).

    Args:
        converter: the model and vocoder loaded at start.
        limits: upload size/duration limits and the concurrency limit (None: defaults sized to the device).
        work_dir: where results are written (None: a fresh temp folder, deleted with the demo or at exit).
        readme_link: a URL of the README for the "How it works" panel (None: named in words).
        voices_dir: where the Voices panel keeps voices (None: `vc_app.voice_library.default_voices_dir()`).
        warm_up: convert and analyse a generated clip first, so the first visitor waits no longer than the
            next ones (a failure is logged, not raised).
    Returns:
        a queued `gr.Blocks`; launch it with `demo.launch(**launch_kwargs(limits))`.
    """
    import gradio as gr

    limits = limits or UiLimits()
    concurrency = limits.concurrency or default_concurrency(converter.device)
    owned = work_dir is None
    work_dir = tempfile.mkdtemp(prefix="vc_app_ui_") if work_dir is None else work_dir
    service = ConversionService(ConverterPool(converter), limits, work_dir, voices_dir)
    if warm_up:
        try:
            log.info("warmed up in %.1f s (one conversion and analysis of a generated clip)", service.warm_up())
        except Exception as err:  # noqa: BLE001 - the page still works; the first conversion is just slower
            log.warning("warm-up failed (%s: %s); the first conversion will be slower", type(err).__name__, err)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        with gr.Tab("Convert", id="convert-tab"):
            page = _layout(gr, service, limits, readme_link)
        with gr.Tab("Live", id="live-tab", elem_id="live-tab") as live_tab:
            live = _live_layout(gr, service, limits)
        live_tab.select(lambda: gr.Dropdown(choices=[NO_LIVE_VOICE, *service.voice_choices()]), outputs=[live.voice],
                        api_visibility="private", queue=False)  # voices saved in the Convert tab meanwhile
        _wire(gr, service, page, concurrency)
        _wire_voices(gr, demo, service, page)
        _wire_live(gr, service, live, limits, concurrency)
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


class _Page(SimpleNamespace):
    """The page's components, by name."""


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
    voices = _voices_panel(gr, service)
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
                 conversion=conversion, **voices)


def _voices_panel(gr, service: ConversionService) -> dict:
    """The Voices panel: pick / blend saved voices, save the target clips as one, delete one."""
    saved = service.voice_choices()
    with gr.Accordion("Voices: keep, pick and blend target voices", open=True, elem_id="voices"):
        gr.Markdown(VOICES_NOTE)
        with gr.Row():
            # custom values: an API call may name a voice saved after the page was built (the service checks it)
            voice = gr.Dropdown([NO_VOICE, *saved], value="", label="Saved voice", allow_custom_value=True,
                                elem_id="voice")
            blend_with = gr.Dropdown([NO_BLEND, *saved], value="", label="…blended with", allow_custom_value=True,
                                     elem_id="blend-with")
            voice_percent = gr.Slider(0, 100, value=50, step=5, label="Share of the saved voice in the blend (%)",
                                      elem_id="voice-percent")
        with gr.Row():
            voice_name = gr.Textbox(label="Name for the target clips above", placeholder="e.g. alice", max_lines=1,
                                    scale=2, elem_id="voice-name")
            with gr.Column(scale=1, min_width=240):
                save = gr.Button("Save the target clips as a voice", size="sm", elem_id="voice-save")
                delete = gr.Button("Delete the saved voice", size="sm", elem_id="voice-delete")
        voice_status = gr.Markdown(elem_id="voice-status")
        with gr.Row():
            confirm_replace = gr.Button("Yes, replace it", variant="stop", visible=False, elem_id="voice-replace")
            confirm_delete = gr.Button("Yes, delete it", variant="stop", visible=False, elem_id="voice-delete-yes")
        pending = gr.State("")  # the voice name a confirmation button acts on
    return dict(voice=voice, blend_with=blend_with, voice_percent=voice_percent, voice_name=voice_name,
                voice_save=save, voice_delete=delete, confirm_replace=confirm_replace, confirm_delete=confirm_delete,
                voice_status=voice_status, pending=pending)


def _examples(gr, source, target) -> None:
    from vc_app.examples import CREDITS, example_pairs

    pairs = example_pairs()
    if pairs:
        gr.Examples([[str(s), str(t)] for s, t, _ in pairs], inputs=[source, target],
                    example_labels=[what for _, _, what in pairs],
                    label="Examples (real recorded speech): click one, then Convert")
        gr.Markdown(CREDITS, elem_id="example-credits")


def _wire(gr, service: ConversionService, page: _Page, concurrency: int) -> None:
    """The events: /convert (public API) and, after it succeeds, the private analysis step."""
    default_model, default_vocoder = service.choices.default_model, service.choices.default_vocoder

    def convert(source: str, target: str | None = None, more_targets: list[str] | None = None,
                model: str = default_model, hub_id: str = "", vocoder: str = default_vocoder, voice: str = "",
                blend_with: str = "", voice_percent: float = 50, progress=gr.Progress()):
        """Convert `source` into the voice of the target clip(s), or of the saved `voice` (blended with
        `blend_with`, `voice_percent` % of `voice`); returns the converted WAV."""
        clips = ([target] if target else []) + list(more_targets or [])
        done = _user_errors(gr, service.convert, source, clips, model=model, hub_id=hub_id, vocoder=vocoder,
                            voice=voice, blend_with=blend_with, voice_percent=voice_percent,
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
        convert, inputs=[page.source, page.target, page.more_targets, page.model, page.hub_id, page.vocoder,
                         page.voice, page.blend_with, page.voice_percent],
        outputs=[page.output, page.conversion], api_name="convert", concurrency_limit=concurrency,
        concurrency_id="convert")
    event.success(analyse, inputs=[page.conversion], outputs=[*page.pictures, page.similarity],
                  api_visibility="private", concurrency_limit=concurrency, concurrency_id="convert",
                  show_progress="minimal")


def _wire_voices(gr, demo, service: ConversionService, page: _Page) -> None:
    """Save (asking before replacing), delete (asking first), and fresh voice menus on every page load."""

    def menus(keep: str = "", keep_blend: str = ""):
        saved = service.voice_choices()
        names = {value for _, value in saved}
        return (gr.Dropdown(choices=[NO_VOICE, *saved], value=keep if keep in names else ""),
                gr.Dropdown(choices=[NO_BLEND, *saved], value=keep_blend if keep_blend in names else ""))

    def save(name, target, more_targets, model, hub_id, voice, blend_with, overwrite=False, progress=gr.Progress()):
        clips = ([target] if target else []) + list(more_targets or [])

        def attempt() -> tuple[str, bool]:
            try:
                return service.save_voice(name, clips, model=model, hub_id=hub_id, overwrite=overwrite,
                                          progress=lambda fraction, words: progress(fraction, desc=words)), False
            except VoiceExists as err:
                return f"{err} Press **Yes, replace it** to replace it with the target clips above.", True

        text, exists = _user_errors(gr, attempt)
        return text, gr.Button(visible=exists), name.strip() if exists else "", *menus(voice, blend_with)

    def replace(pending, target, more_targets, model, hub_id, voice, blend_with, progress=gr.Progress()):
        return save(pending, target, more_targets, model, hub_id, voice, blend_with, True, progress)

    def ask_delete(voice):
        if not voice:
            raise gr.Error("Pick the saved voice to delete in the Saved voice menu first.", print_exception=False)
        return (f"Delete the saved voice **{voice}**? This cannot be undone: press **Yes, delete it**.",
                gr.Button(visible=True), voice)

    def delete(pending, voice, blend_with):
        text = _user_errors(gr, service.delete_voice, pending)
        return text, gr.Button(visible=False), "", *menus(voice, blend_with)

    voice_menus = [page.voice, page.blend_with]
    clips = [page.target, page.more_targets, page.model, page.hub_id, *voice_menus]
    page.voice_save.click(save, inputs=[page.voice_name, *clips],
                          outputs=[page.voice_status, page.confirm_replace, page.pending, *voice_menus],
                          api_visibility="private", concurrency_id="convert")
    page.confirm_replace.click(replace, inputs=[page.pending, *clips],
                               outputs=[page.voice_status, page.confirm_replace, page.pending, *voice_menus],
                               api_visibility="private", concurrency_id="convert")
    page.voice_delete.click(ask_delete, inputs=[page.voice], outputs=[page.voice_status, page.confirm_delete,
                                                                       page.pending], api_visibility="private")
    page.confirm_delete.click(delete, inputs=[page.pending, *voice_menus],
                              outputs=[page.voice_status, page.confirm_delete, page.pending, *voice_menus],
                              api_visibility="private")
    demo.load(menus, outputs=voice_menus, api_visibility="private", queue=False)  # voices saved since start


def _live_layout(gr, service: ConversionService, limits: UiLimits) -> _Page:
    """The Live tab: the voice to speak in, the microphone streamed to the server, the conversion streamed back."""
    gr.Markdown(LIVE_NOTE.format(seconds=limits.max_seconds))
    with gr.Row():
        voice = gr.Dropdown([NO_LIVE_VOICE, *service.voice_choices()], value="", label="Saved voice",
                            elem_id="live-voice")
        targets = gr.File(file_count="multiple", file_types=["audio"], height=120,
                          label="…or clips of the target voice", elem_id="live-targets")
    with gr.Row():
        model = gr.Dropdown(service.choices.models, value=service.choices.default_model, label="Model",
                            elem_id="live-model")
        vocoder = gr.Dropdown(live_vocoder_choices(), value=AUTO_VOCODER, label="Vocoder", elem_id="live-vocoder")
    with gr.Row(equal_height=False):
        mic = gr.Audio(sources=["microphone"], type="numpy", streaming=True, label="Microphone: press Record",
                       elem_id="live-mic")
        heard = gr.Audio(streaming=True, autoplay=True, interactive=False, label="You, in the target voice",
                         elem_id="live-out")
    status = gr.Markdown("Latency: shown once the microphone streams.", elem_id="live-status")
    gr.HTML("", js_on_load=PLAYER_BUFFER_JS, elem_id="live-player")
    return _Page(voice=voice, targets=targets, model=model, vocoder=vocoder, mic=mic, heard=heard, status=status,
                 session=gr.State(None))


def live_vocoder_choices() -> list[tuple[str, str]]:
    """The Live tab's vocoder menu: automatic (the best that keeps up, measured), then each live vocoder."""
    from vc_app.streaming import LIVE_VOCODERS

    return [("automatic: the best that keeps up on this server", AUTO_VOCODER), *((s, s) for s in LIVE_VOCODERS)]


def _wire_live(gr, service: ConversionService, live: _Page, limits: UiLimits, concurrency: int) -> None:
    """Record starts a stream (one per browser session) and a player that streams its output back; each chunk
    of the microphone goes through it; Stop ends both. Live streams hold their own slots (`concurrency` of them)."""

    def start(voice, targets, model, vocoder, progress=gr.Progress()):
        session = _user_errors(gr, service.start_live, voice, list(targets or []), model=model, vocoder=vocoder,
                               progress=lambda fraction, text: progress(fraction, desc=text))
        return session, session.status()

    def play(session: LiveSession | None):
        if session is None:
            return
        for chunk in session.converted():
            yield (session.sample_rate, _pcm16(chunk)), session.status()
        yield gr.skip(), session.status()

    def push(chunk, session: LiveSession | None):
        if chunk is None or session is None:  # the stream is still being built: this chunk is not heard
            return
        rate, samples = chunk
        _user_errors(gr, session.push, rate, samples)

    def stop(session: LiveSession | None):
        if session is not None:
            session.close()
        return None

    started = live.mic.start_recording(start, inputs=[live.voice, live.targets, live.model, live.vocoder],
                                       outputs=[live.session, live.status], api_visibility="private",
                                       concurrency_id="live-start", concurrency_limit=concurrency)
    started.success(play, inputs=[live.session], outputs=[live.heard, live.status], api_visibility="private",
                    concurrency_id="live-play", concurrency_limit=None, show_progress="hidden")
    live.mic.stream(push, inputs=[live.mic, live.session], outputs=None, api_visibility="private",
                    stream_every=STREAM_EVERY, time_limit=limits.max_seconds, concurrency_id="live",
                    concurrency_limit=concurrency)
    live.mic.stop_recording(stop, inputs=[live.session], outputs=[live.session], api_visibility="private",
                            queue=False)


def _pcm16(chunk):
    """(M,) float in [-1, 1] -> int16, so Gradio streams it as it is (it scales float audio to its own peak)."""
    import numpy as np

    return (np.clip(chunk, -1.0, 1.0) * 32767).astype(np.int16)


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
    rows = []
    if "converted_vs_target" in sims:
        closer = sims["converted_vs_target"] > sims["converted_vs_source"]
        head = ("the result is " + ("closer to the target than to the source." if closer
                                    else "still closer to the source than to the target."))
        rows.append(("converted ↔ target", sims["converted_vs_target"]))
    elif any(key.startswith("converted_vs_voice:") for key in sims):
        head = "the result against each voice of the blend, and against the source."
    else:
        head = "the result against the source (the target could not be measured)."
    rows += [(f"converted ↔ voice {key.split(':', 1)[1]}", value) for key, value in sims.items()
             if key.startswith("converted_vs_voice:")]
    rows.append(("converted ↔ source", sims["converted_vs_source"]))
    if "source_vs_target" in sims:
        rows.append(("source ↔ target (before)", sims["source_vs_target"]))
    table = "\n".join(f"| {label} | {value:.3f} |" for label, value in rows)
    note = f"\n\n{analysis.note}" if analysis.note else ""
    return (f"**Speaker similarity** (cosine of Resemblyzer d-vectors, 1 = same voice): {head}\n\n"
            f"| pair | similarity |\n|---|---|\n{table}{note}")


__all__ = ["UiLimits", "build_demo", "default_concurrency", "launch_kwargs", "readme_url", "share_threads",
           "similarity_available", "warm_up_server"]
