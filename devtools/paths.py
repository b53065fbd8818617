"""Where the project keeps what its tooling reads and writes, named once.

`ROOT` is this checkout; the other names are relative to a project root, because commands
and tests take `root` / `--project-dir` and point them at a copy. Development tooling only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]

# Chalice's project folder: its config, and the per-function policy files `make policies` writes.
CHALICE_DIR: Final = Path(".chalice")
CHALICE_CONFIG: Final = CHALICE_DIR / "config.json"
# What the local stack and ops commands write on this machine (git ignores it).
LOCAL_DIR: Final = Path(".local")
DRY_RUN_LOG: Final = LOCAL_DIR / "dry-run.jsonl"
REPLAY_DIR: Final = LOCAL_DIR / "replay"
# The GTM container kit checked in for import.
GTM_CONTAINER: Final = Path("gtm") / "pixel-relay-container.json"
# Per-stage deploy settings Chalice has no place for, and what `make package` builds.
DEPLOY_DIR: Final = Path("deploy")
STAGES_FILE: Final = DEPLOY_DIR / "stages.json"
BUILD_DIR: Final = DEPLOY_DIR / "build"
