"""Messages of the requests pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
