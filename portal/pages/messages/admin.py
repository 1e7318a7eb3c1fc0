"""Messages of the admin pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
