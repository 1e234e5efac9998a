"""MkDocs hook: the docstrings' Sphinx roles (:class:`X`) rendered as plain code (X)."""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|meth|func|attr|exc|data|mod|obj):<code>~?([^<]*)</code>")


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(lambda match: f"<code>{match.group(1)}</code>", html)
