"""An optional allowlist of the pages a hit may come from, read from Origin or Referer.

A filter for honest browsers, not a security boundary: it drops hits from copies of the tag
on other sites, staging hosts and saved pages, but any script can send any Origin or Referer
it likes. Browsers send no Origin with an image request (a no-cors GET), so in practice the
Referer decides; by default (Referrer-Policy strict-origin-when-cross-origin) it carries at
least the page's origin.

A hit with neither header (or `Origin: null`, an opaque page) passes by default: pages with
`Referrer-Policy: no-referrer`, privacy extensions and some in-app browsers send none, and
a client that omits the headers could as easily forge them, so refusing buys no safety and
loses real visitors. `allow_missing=False` refuses such hits for sites that want that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from chalicelib.env import ConfigError, Reader

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_PORT = re.compile(r"[0-9]{1,5}")
# scheme://host[:port] and then nothing, or a path, query or fragment. The authority allows
# only what a browser writes there: no "@", "\\", "%", space or non-ASCII.
_URL = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(?:[/?#].*)?", re.DOTALL
)


@dataclass(frozen=True)
class OriginPattern:
    """One allowed origin: an exact host, or `*.` and a domain for any of its subdomains."""

    scheme: str
    host: str
    port: int
    subdomains: bool

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if (scheme, port) != (self.scheme, self.port):
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True)
class OriginPolicy:
    """Which page origins may send hits; empty allows every page."""

    patterns: tuple[OriginPattern, ...] = ()
    allow_missing: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.patterns)

    @classmethod
    def parse(
        cls, text: str, allow_missing: bool = True, variable: str = "ALLOWED_PAGE_ORIGINS"
    ) -> OriginPolicy:
        """A comma list such as `https://shop.example.com,https://*.example.com`."""
        items = [item.strip() for item in text.split(",")]
        if text.strip() and not all(items):
            raise ConfigError(variable, "has an empty origin; separate origins with commas")
        return cls(tuple(_pattern(item, variable) for item in items if item), allow_missing)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OriginPolicy:
        """ALLOWED_PAGE_ORIGINS (default empty: off) and PAGE_ORIGIN_REQUIRED (default false)."""
        required = Reader(environ).boolean("PAGE_ORIGIN_REQUIRED", default=False)
        return cls.parse(environ.get("ALLOWED_PAGE_ORIGINS", ""), allow_missing=not required)

    def allows(self, origin: str | None, referer: str | None) -> bool:
        """Whether a hit with these request headers comes from an allowed page."""
        return self.refusal(origin, referer) is None

    def refusal(self, origin: str | None, referer: str | None) -> tuple[str, str] | None:
        """None when the page is allowed; else the header that decided and why not.

        Origin decides when a browser sent one; otherwise the Referer's origin. A header that
        is present but not a URL is refused: honest browsers do not send those. With neither
        header, the hit passes unless `allow_missing` is off (PAGE_ORIGIN_REQUIRED).
        """
        if not self.patterns:
            return None
        origin = (origin or "").strip()
        if origin and origin != "null":
            name, header = "Origin", origin
        else:
            name, header = "Referer", (referer or "").strip()
        if not header:
            if self.allow_missing:
                return None
            return "Origin/Referer", "neither sent; the page must be named (PAGE_ORIGIN_REQUIRED)"
        page = _origin_of(header)
        if page is not None and any(pattern.matches(*page) for pattern in self.patterns):
            return None
        return name, "page origin not allowed (ALLOWED_PAGE_ORIGINS)"


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a header's URL, or None for anything a browser would not send.

    Read as strictly as a browser writes it, so that no parser can see another host in it:
    a browser's Origin and Referer carry no userinfo (`user@`), no backslash, no percent-escape
    or non-ASCII in the host. Python's `urlsplit` would read `https://evil.com\\@shop.com/` as
    shop.com, while the WHATWG URL parser browsers use (backslash is a slash in http/https)
    reads evil.com; such a header is refused rather than read either way. Case is folded
    and one trailing dot dropped (`SHOP.example.com.` is the same host), as browsers do.
    """
    found = _URL.fullmatch(url)
    if found is None:
        return None
    scheme, host, port_text = found.group(1).lower(), found.group(2).lower(), found.group(3)
    host = host.removesuffix(".")
    if scheme not in DEFAULT_PORTS or not _HOST.fullmatch(host):
        return None
    port = DEFAULT_PORTS[scheme] if port_text is None else int(port_text)
    if not 0 < port < 65536:
        return None
    return scheme, host, port


def _pattern(text: str, variable: str) -> OriginPattern:
    problem = (
        f"{text[:80]!r} is not an origin like https://shop.example.com or https://*.example.com"
    )
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise ConfigError(variable, problem)
    authority = rest.removesuffix("/")
    subdomains = authority.startswith("*.")
    host, _, port_text = authority.removeprefix("*.").lower().partition(":")
    if not _HOST.fullmatch(host) or (port_text and not _PORT.fullmatch(port_text)):
        # Hosts are ASCII: write an internationalized domain in its xn-- form.
        raise ConfigError(variable, problem)
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536 or (subdomains and "." not in host):
        raise ConfigError(variable, problem)
    return OriginPattern(scheme, host, port, subdomains)
