"""`.venv/bin/python -m devtools.ops`: what `make ops` runs."""

import sys

from devtools.ops.cli import main

sys.exit(main())
