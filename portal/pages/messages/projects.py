"""Messages of the projects pages: key -> (English, Korean)."""

MESSAGES: dict[str, tuple[str, str]] = {}
