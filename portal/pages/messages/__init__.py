"""The pages' one message catalogue: every string a page shows, in English and Korean.

Each area of the pages keeps its messages in its own module (``common``, ``jobs``, ...), keyed
``area.name``; ``MESSAGES`` is their union, and a key defined twice is an error at import.
``{name}`` marks a value filled in when the message is used (``portal.pages.i18n.Words``).
"""

from __future__ import annotations

from portal.pages.messages import (
    admin,
    common,
    jobs,
    people,
    programs,
    projects,
    reports,
    requests,
)

Message = tuple[str, str]
"""English, Korean."""


def _union(*parts: dict[str, Message]) -> dict[str, Message]:
    merged: dict[str, Message] = {}
    for part in parts:
        twice = merged.keys() & part.keys()
        if twice:
            raise ValueError(f"messages defined twice: {sorted(twice)}")
        merged.update(part)
    return merged


MESSAGES = _union(
    common.MESSAGES,
    jobs.MESSAGES,
    projects.MESSAGES,
    requests.MESSAGES,
    programs.MESSAGES,
    people.MESSAGES,
    admin.MESSAGES,
    reports.MESSAGES,
)
