"""mkdocs hook: render the Sphinx roles used in the package's docstrings.

Docstrings cite code as ``:func:`rmt.wigner.kappa``` (Sphinx style). mkdocstrings renders Markdown, which
would print the role literally; this hook turns ``:func:<code>name</code>`` in the rendered HTML into an
optional mkdocs-autorefs cross-reference (a link when ``name`` is a documented object, plain code otherwise)
and drops ``:math:`` markers. It changes nothing else.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|exc|obj):<code>~?\.?([^<]+)</code>")
_MATH = re.compile(r":math:(<code>[^<]*</code>)")


def _link(match: re.Match[str]) -> str:
    name = match.group(2).strip().rstrip("()")
    return f'<autoref identifier="{name}" optional><code>{match.group(2)}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    return _MATH.sub(r"\1", _ROLE.sub(_link, html))
