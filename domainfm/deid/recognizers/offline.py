"""Offline stand-ins for presidio parts that would reach the network.

presidio's e-mail recognizer validates domains with ``tldextract.extract``, whose default
extractor downloads the public suffix list on first use. Ours uses the snapshot that ships
inside tldextract (``suffix_list_urls=()``) and no disk cache, so detection never opens a socket.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def offline_tld_extract():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=1)
def generic_tlds() -> frozenset[str]:
    """Top-level domains of three letters or more in the bundled public suffix list ("health",
    "clinic", "app"): the generic ones, without the two-letter country codes."""
    return frozenset(t for t in offline_tld_extract().tlds if "." not in t and len(t) >= 3 and t.isascii())
