"""The bot filter: known crawlers and tools are named, real browsers pass, and the check is
cheap enough to run on every hit."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.bots import CRAWLER, EMPTY_USER_AGENT, BotFilter
from chalicelib.env import ConfigError

BROWSERS = [
    # Desktop and mobile browsers, and the in-app browsers GTM pages often load in.
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 334.0.4.32.98 (iPhone15,2; iOS 17_5; en_US; en; scale=3.00)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.38.109;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [Pinterest/iOS]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) GSA/330.0.661277284 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
]

BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Wget/1.21.4",
    "Go-http-client/2.0",
]


@pytest.fixture(scope="module")
def bot_filter() -> BotFilter:
    return BotFilter()


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_browsers_pass(bot_filter: BotFilter, user_agent: str) -> None:
    assert bot_filter.reason(user_agent) is None


@pytest.mark.parametrize("user_agent", BOTS)
def test_known_bots_and_tools_are_crawlers(bot_filter: BotFilter, user_agent: str) -> None:
    assert bot_filter.reason(user_agent) == CRAWLER


@pytest.mark.parametrize("user_agent", [None, "", "   ", "\t"])
def test_a_missing_user_agent_is_a_bot(bot_filter: BotFilter, user_agent: str | None) -> None:
    assert bot_filter.reason(user_agent) == EMPTY_USER_AGENT


def test_switched_off_it_passes_everything() -> None:
    off = BotFilter(enabled=False)
    assert off.reason(BOTS[0]) is None
    assert off.reason(None) is None


def test_switch_from_the_environment() -> None:
    assert BotFilter.from_env({}).enabled
    assert not BotFilter.from_env({"BOT_FILTER": "false"}).enabled
    with pytest.raises(ConfigError, match="BOT_FILTER"):
        BotFilter.from_env({"BOT_FILTER": "sometimes"})


def test_only_the_start_of_a_huge_user_agent_is_matched(bot_filter: BotFilter) -> None:
    assert bot_filter.reason("Googlebot/2.1 " + "x" * 100_000) == CRAWLER
    assert bot_filter.reason(BROWSERS[0] + " " * 600 + "Googlebot/2.1") is None


def test_per_hit_cost_is_small(bot_filter: BotFilter) -> None:
    """Budgets far above the measured cost (see the report in docs/threat-model.md), so the
    test catches a pathological pattern or a lost cache, not a slow machine."""
    worst = "Mozilla/5.0 " + "(a; " * 200
    started = time.perf_counter()
    for n in range(50):
        bot_filter.reason(worst + str(n))  # a new string each time: no cache
    uncached = (time.perf_counter() - started) / 50
    started = time.perf_counter()
    for _ in range(1000):
        bot_filter.reason(BROWSERS[0])
    cached = (time.perf_counter() - started) / 1000
    assert uncached < 0.02
    assert cached < 0.0005


@settings(max_examples=200, deadline=None, database=None, derandomize=bool(os.environ.get("CI")))
@given(st.one_of(st.none(), st.text(max_size=700)))
def test_any_user_agent_gets_a_known_answer(bot_filter: BotFilter, user_agent: str | None) -> None:
    assert bot_filter.reason(user_agent) in {None, CRAWLER, EMPTY_USER_AGENT}
