import sys

from vc_app.cli import main

sys.exit(main())
