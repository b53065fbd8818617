"""docs/gtm-setup.md step 4's snippet, run as written: every function it calls exists, it keeps
one endpoint id per browser, and it pushes what the kit's container reads."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from devtools.paths import ROOT
from tests.gtm.node import node

SETUP = ROOT / "docs" / "gtm-setup.md"

# A browser page for the snippet: a cookie jar behind document.cookie, window = globalThis.
PAGE = r"""
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const jar = new Map(Object.entries(input.cookies));
globalThis.window = globalThis;
globalThis.document = {
  get cookie() { return [...jar].map(([k, v]) => k + '=' + v).join('; '); },
  set cookie(text) { const [pair] = text.split(';'); const at = pair.indexOf('=');
                     jar.set(pair.slice(0, at).trim(), pair.slice(at + 1)); },
};
new Function(input.code)();
process.stdout.write(JSON.stringify({dataLayer: window.dataLayer,
                                     cookies: Object.fromEntries(jar)}));
"""


def snippet() -> str:
    text = SETUP.read_text()
    section = text[text.index("## 4. Push events from the site") :]
    match = re.search(r"```html\n<script>\n(.*?)</script>\n```", section, re.DOTALL)
    assert match, "step 4 has no <script> example"
    return match.group(1)


def run(cookies: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [node(), "-e", PAGE],
        input=json.dumps({"code": snippet(), "cookies": cookies}),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_the_snippet_runs_and_keeps_one_endpoint_id_per_browser() -> None:
    first = run({})
    endpoint = first["dataLayer"][0]["endpointId"]
    assert re.fullmatch(r"[\x21-\x7e]{1,128}", endpoint)  # what the pixel takes
    assert first["cookies"]["pixel_relay_id"]
    again = run(first["cookies"])
    assert again["dataLayer"][0] == {"endpointId": endpoint}
    assert again["dataLayer"][-1] == {
        "event": "purchase",
        "attributes": {"product": "shoes & socks"},
        "metrics": {"price": 49.9},
    }
