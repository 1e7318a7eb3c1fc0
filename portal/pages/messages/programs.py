"""Messages of the programs pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
