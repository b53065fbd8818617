"""`.venv/bin/python -m devtools.localstack`: what `make dev` runs."""

import sys

from devtools.localstack.runner import main

sys.exit(main())
