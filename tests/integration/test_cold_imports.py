"""Cold imports, seen from a fresh interpreter: what importing and configuring a function loads."""

from __future__ import annotations

import subprocess
import sys


def test_the_pixel_settings_load_no_service_model() -> None:
    """Cold start: the pixel parses Settings only; destination models are the consumer's."""
    script = (
        "import sys\n"
        "from chalicelib.config import Settings\n"
        "from chalicelib.destinations import registry\n"
        "Settings.from_env(dict(EVENTS_QUEUE='q', DEAD_LETTER_QUEUE='d',"
        " DESTINATIONS=','.join(registry.known())))\n"
        "print(sorted(name for name in sys.modules if name.startswith(("
        "'chalicelib.service_models', 'chalicelib.destinations.', 'botocore.loaders'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['chalicelib.destinations.registry']"
