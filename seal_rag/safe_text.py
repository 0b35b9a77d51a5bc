"""Untrusted text (documents, file names, metadata, LLM output) made safe for a terminal.

Everything seal-rag prints passes through here. A document or a chat model can hold escape
sequences that clear the screen, set the window title or write the clipboard (OSC 52), and a
terminal obeys them even when the output goes through a pipe to `less -R` or `tee`. So every
control character is shown as a visible `\\xNN` escape instead of being sent raw; nothing is
dropped, so a user can still see that the text held one.

JSON output is left exact: `json_line` only spells the characters a terminal could obey as
`\\uXXXX` escapes, which a JSON parser reads back as the very same characters.
"""

from __future__ import annotations

import json
import re

# C0 controls (ESC among them) and DEL; C1 controls (U+009B is a one-character CSI); the
# bidirectional overrides and isolates, which can make text read differently than it is stored.
_BIDI = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
# Inside JSON, C0 controls are already escaped by `json.dumps`; these are the rest.
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object, multiline: bool = False) -> str:
    """`text` with every control character shown as a visible escape.

    Args:
        multiline: Keep newlines and tabs (an answer, a passage); otherwise they are escaped
            too, so a file name or a title stays on its one line.
    """
    return (_UNSAFE_KEEP_LINES if multiline else _UNSAFE).sub(_visible, str(text))


def one_line(error: object, limit: int = 160) -> str:
    """Another library's message (often several lines) as one short line a terminal can show."""
    return for_terminal(" ".join(str(error).split())[:limit])


def json_line(payload: object) -> str:
    """`payload` as one line of JSON that reads back exactly, with nothing a terminal would obey."""
    text = json.dumps(payload, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
