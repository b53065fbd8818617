"""Cold imports, seen from a fresh interpreter: what importing and configuring a function loads."""

from __future__ import annotations


def test_the_pixel_settings_load_no_service_model() -> None:
    """Cold start: the pixel parses Settings only; destination models are the consumer's."""
    import subprocess
    import sys

    script = (
        "import os, sys, boto3\n"
        "from chalicelib.config import Settings\n"
        "Settings.from_env(dict(EVENTS_QUEUE='q', DEAD_LETTER_QUEUE='d',"
        " DESTINATIONS='firehose,eventbridge,customer-profiles'))\n"
        "loader = boto3._get_default_session()._session.get_component('data_loader')\n"
        "print(sorted(key[1] for key in loader._cache if key[0] == 'load_service_model'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
