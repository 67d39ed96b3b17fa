"""`python -m vc_app.train` (what torchrun launches): the same as `vc-app train`."""

import sys

from vc_app.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
