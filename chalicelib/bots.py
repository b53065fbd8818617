"""Bot filtering on the User-Agent, with the crawler-user-agents list.

Crawlers, link previewers, uptime monitors and headless browsers that run a site's GTM
container fire its image tags too; their hits would start journeys for nobody and skew
analytics. The patterns come from crawler-user-agents (about 1,500 community-maintained
regular expressions, released often), never from a hand-written list here.

Only honest bots are stopped: anything can send a browser's User-Agent. A missing or blank
User-Agent counts as a bot (`empty_user_agent`): every browser sends one with an image
request and page scripts cannot remove it, so its absence means a script or a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from chalicelib.env import Reader

CRAWLER: Final = "crawler"
EMPTY_USER_AGENT: Final = "empty_user_agent"
# Real User-Agents are under 400 characters and bots name themselves early; matching costs
# grow with length (about 1.5 ms for 1 KB), so only this much is matched.
MATCHED_LENGTH: Final = 512


@dataclass(frozen=True)
class BotSettings:
    """Whether hits from known bots are refused (BOT_FILTER, default true)."""

    enabled: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BotSettings:
        return cls(enabled=Reader(environ).boolean("BOT_FILTER", default=True))


class BotFilter:
    """Says why a hit comes from a bot, or None for a (presumed) browser.

    The patterns are loaded and compiled when the filter is built (about 40 ms, once per
    container); results are cached per User-Agent string, since a site's traffic repeats a
    few hundred of them.
    """

    def __init__(self, enabled: bool = True, cache_size: int = 4096) -> None:
        self.enabled = enabled
        self._is_crawler: Callable[[str], bool] = _never
        if enabled:
            # ~20 ms to import (it reads a 0.5 MB JSON list): only for filters that run.
            import crawleruseragents  # type: ignore[import-untyped]

            crawleruseragents.is_crawler("")  # compiles the patterns now, not on a hit
            self._is_crawler = lru_cache(maxsize=cache_size)(crawleruseragents.is_crawler)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BotFilter:
        """BOT_FILTER (default true) switches it."""
        return cls(enabled=BotSettings.from_env(environ).enabled)

    def reason(self, user_agent: str | None) -> str | None:
        """`crawler`, `empty_user_agent`, or None when the hit may go on."""
        if not self.enabled:
            return None
        if user_agent is None or not user_agent.strip():
            return EMPTY_USER_AGENT
        if self._is_crawler(user_agent[:MATCHED_LENGTH]):
            return CRAWLER
        return None


def _never(user_agent: str) -> bool:
    return False
