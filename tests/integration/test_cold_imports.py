"""What the pixel's cold start loads: no destination module and no service model."""

from __future__ import annotations

import subprocess
import sys


def test_the_pixel_settings_load_no_service_model() -> None:
    """Cold start: the pixel parses Settings only; destination models are the consumer's.

    Every file the interpreter opens is seen by an audit hook (PEP 578, a public API), so a
    service model counts however it is read: `botocore/data/<service>/<version>/service-2.json`
    (gzipped in recent botocore). Every registered destination is named, so a new one is
    covered without an edit here."""
    script = (
        "import sys\n"
        "from pathlib import PurePath\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(args[0]))\n"
        "import boto3\n"
        "from chalicelib.config import Settings\n"
        "from chalicelib.destinations import registry\n"
        "Settings.from_env(dict(EVENTS_QUEUE='q', DEAD_LETTER_QUEUE='d',"
        " DESTINATIONS=','.join(registry.known())))\n"
        "paths = [PurePath(p) for p in opened if isinstance(p, str)]\n"
        "print(sorted(p.parents[1].name for p in paths if p.name.startswith('service-2.json')))\n"
        "print(sorted(name for name in sys.modules if name.startswith(("
        "'chalicelib.service_models', 'chalicelib.destinations.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    models, modules = out.strip().splitlines()
    assert models == "[]"
    assert modules == "['chalicelib.destinations.registry']"
