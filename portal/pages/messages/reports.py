"""Messages of the reports pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
