"""Regenerates browser-globals.json: every name on a fresh Chromium page's `window` and its
prototype chain, which GTM's access_globals rule forbids as the first token of a key.

    .venv/bin/python -m devtools.gtm.globals [path to chromium]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
TARGET: Final = HERE / "browser-globals.json"
COLLECT: Final = """() => {
  const seen = new Set();
  for (let o = window; o; o = Object.getPrototypeOf(o)) {
    for (const n of Object.getOwnPropertyNames(o)) seen.add(n);
  }
  return [...seen].sort();
}"""


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    executable = argv[0] if argv else "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_page()
        page.goto("about:blank")
        names: list[str] = page.evaluate(COLLECT)
        version = browser.version
        browser.close()
    known = set(json.loads(TARGET.read_text())["names"]) if TARGET.exists() else set()
    document = {
        "source": "Object.getOwnPropertyNames along window's prototype chain on about:blank, "
        f"Chromium {version} (headless), merged with the names listed before; regenerate "
        "with: .venv/bin/python -m devtools.gtm.globals",
        "names": sorted(known | set(names)),
    }
    TARGET.write_text(json.dumps(document, indent=0) + "\n")
    print(f"{TARGET}: {len(document['names'])} names")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
