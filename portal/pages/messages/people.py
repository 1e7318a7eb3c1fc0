"""Messages of the people pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
