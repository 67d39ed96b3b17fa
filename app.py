"""`python app.py`: start the web UI (Gradio) on http://127.0.0.1:7860.

Thin on purpose: parse options, load the model and vocoder once, hand them to
`vc_app.ui.build_demo`, launch. Run `python app.py --help` for the options.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from pathlib import Path

from vc_app.commands.options import add_model_options  # light imports: no torch or gradio, so --help is quick
from vc_app.errors import VcAppError, add_debug_option, run_entry_point
from vc_app.ui_limits import UiLimits


def get_parser() -> argparse.ArgumentParser:
    limits = UiLimits()
    parser = argparse.ArgumentParser(description="Start the vc_app web UI (one-shot voice conversion).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (off by default)")
    add_model_options(parser)
    parser.add_argument("--max-upload-mb", type=float, default=limits.max_upload_mb, metavar="MB",
                        help="largest upload accepted (default: %(default)g)")
    parser.add_argument("--max-seconds", type=float, default=limits.max_seconds, metavar="S",
                        help="longest source or target clip accepted, in seconds (default: %(default)g)")
    parser.add_argument("--concurrency", type=int, default=limits.concurrency, metavar="N",
                        help="conversions run at once, the rest wait in the queue (default: sized to the machine: "
                             "4 on a GPU, else one per 4 CPU cores)")
    parser.add_argument("--queue-size", type=int, default=limits.queue_size, metavar="N",
                        help="requests that may wait in the queue (default: %(default)d)")
    parser.add_argument("--voices-dir", metavar="DIR",
                        help="where the Voices panel keeps saved voices (default: $VC_APP_VOICES_DIR, else the "
                             "per-user data folder, e.g. ~/.local/share/vc-app/voices; the same as vc-app voice)")
    add_debug_option(parser)
    return parser


def limits_from_args(args: argparse.Namespace) -> UiLimits:
    return UiLimits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, concurrency=args.concurrency,
                    queue_size=args.queue_size)


def _log_to_stderr() -> None:
    """Show vc_app's own messages (models loaded on demand, unexpected errors), not every HTTP request."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("vc_app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    return run_entry_point("app.py", lambda: serve(args), debug=args.debug)


def serve(args: argparse.Namespace) -> int:
    """Load the model and vocoder once, warm up, serve until stopped."""
    from vc_app.converter import VoiceConverter

    limits = limits_from_args(args)
    if args.voices_dir and Path(args.voices_dir).exists() and not Path(args.voices_dir).is_dir():
        raise VcAppError(f"--voices-dir {args.voices_dir} is a file, not a folder.")
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    from vc_app.ui import build_demo, launch_kwargs, readme_url, share_threads, warm_up_server

    share_threads(converter.device, limits)
    _log_to_stderr()
    signal.signal(signal.SIGTERM, _stop)  # `kill` / systemd: shut down like Ctrl+C, so the temp folder goes too
    with tempfile.TemporaryDirectory(prefix="vc_app_ui_") as work_dir:
        demo = build_demo(converter, limits=limits, work_dir=work_dir, readme_link=readme_url(),
                          voices_dir=args.voices_dir, warm_up=True)
        try:  # quiet: Gradio's own hint would say `share=True` in launch(); ours names --share
            demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                        prevent_thread_lock=True, **launch_kwargs(limits))
        except OSError as err:  # port taken, address not on this machine
            raise VcAppError(f"cannot serve on {args.host}:{args.port} ({str(err).split('. ')[0]}).") from None
        try:
            logging.getLogger("vc_app").info("server warmed up in %.1f s (one request to /convert)",
                                             warm_up_server(demo.local_url, work_dir))
        except Exception as err:  # noqa: BLE001 - serving still works; the first request is just slower
            logging.getLogger("vc_app").warning("server warm-up failed (%s: %s)", type(err).__name__, err)
        print(f"* Running on local URL:  {demo.local_url}", flush=True)
        if not args.share:
            print("* To create a public link too, start it with --share.", flush=True)
        demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
