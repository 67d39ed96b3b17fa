"""CLI commands: one module each, with `add_parser(subparsers)` and `run(args)`; no heavy imports at the top."""
