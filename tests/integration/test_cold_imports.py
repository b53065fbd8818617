"""Cold imports, seen from a fresh interpreter: what importing and configuring a function loads."""

from __future__ import annotations


def test_the_pixel_settings_load_no_service_model() -> None:
    """Cold start: the pixel parses Settings only; destination models are the consumer's.

    Every file the interpreter opens is seen by an audit hook (PEP 578, a public API), so a
    service model counts however it is read: `botocore/data/<service>/<version>/service-2.json`
    (gzipped in recent botocore)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import PurePath\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(args[0]))\n"
        "import boto3\n"
        "from chalicelib.config import Settings\n"
        "Settings.from_env(dict(EVENTS_QUEUE='q', DEAD_LETTER_QUEUE='d',"
        " DESTINATIONS='firehose,eventbridge,customer-profiles'))\n"
        "paths = [PurePath(p) for p in opened if isinstance(p, str)]\n"
        "print(sorted(p.parents[1].name for p in paths if p.name.startswith('service-2.json')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
