"""Cloud-supplied text made visible: control characters, bidirectional overrides
(which can reorder what is shown around them, "gnp.exe" for "exe.png") and lone
surrogates are shown as `\\u202e` instead of acting (or failing the page). HTML
escaping is the templates' job (autoescape)."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

# control characters, bidirectional marks and overrides, and lone surrogates (JSON can
# carry one, "\\ud800"; no page with one can be encoded)
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def visible(value: Any) -> Any:
    """Every value a template prints passes here (Jinja's `finalize`)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
