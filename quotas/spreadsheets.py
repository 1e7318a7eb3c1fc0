"""Cells written to CSV files that people open in spreadsheets: none may run as a formula."""

from __future__ import annotations

import re
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may take for the start of a formula (OWASP's CSV injection list)."""
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def defused(value: Any) -> Any:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading ``'``,
    but a signed number (a negative amount) stays a number."""
    if value is None:
        return ""
    formula = isinstance(value, str) and value.startswith(FORMULA_START)
    if formula and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
