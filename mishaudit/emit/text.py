"""What emitted code may say about a formula: its id as an identifier, its :name as comment text, and
numbers as exact literals. Nothing else of a formula file reaches the output."""

from __future__ import annotations

import math
import re


def identifier(formula_id: str) -> str:
    """`mishaudit_<id>`, every character of the id outside [A-Za-z0-9_] replaced by '_'."""
    return "mishaudit_" + re.sub(r"[^A-Za-z0-9_]", "_", formula_id)


def comment_text(text: str, limit: int = 200) -> str:
    """`text` safe inside a C block comment and a Python `#` comment: printable ASCII only (anything else,
    newlines included, becomes a space or '?'), no backslash, no '*/' and no '??' (a C trigraph), at most
    `limit` characters."""
    out = "".join(c if 32 <= ord(c) < 127 else (" " if c.isspace() else "?") for c in str(text))
    out = out.replace("\\", "/")
    while "*/" in out or "/*" in out or "??" in out:
        out = out.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def hex_float(v: float) -> str:
    """The exact hexadecimal text of a finite binary64 value, trailing zero digits dropped: 0x1.8p-1,
    -0x0p+0, 0x0.0000000000001p-1022 (C99 and float.fromhex read it exactly)."""
    if not math.isfinite(v):
        raise ValueError(v)
    mant, _, exp = float.hex(v).partition("p")
    whole, _, frac = mant.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}{'.' + frac if frac else ''}p{exp}"


def py_float(v: float) -> str:
    """A Python expression for the binary64 value v, exactly: float.fromhex('...') ('inf', '-inf', 'nan')."""
    if math.isnan(v):
        return "float.fromhex('nan')"
    if math.isinf(v):
        return "float.fromhex('inf')" if v > 0 else "float.fromhex('-inf')"
    return f"float.fromhex('{hex_float(v)}')"
