"""Korean and English for the pages: which language a browser gets, and numbers, credits, dates
and durations written the way its locale writes them.

Every string a page shows comes from one catalogue (``portal.pages.messages.MESSAGES``), where a
message has its English and Korean side by side, so neither can go missing. A browser gets the
language it chose with the switch (a cookie), else the better of its ``Accept-Language``, else
English. Babel formats numbers and dates with CLDR's data for the locale; times are shown in the
pool's time zone (``PortalSettings.timezone``), named on every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal, format_percent

from portal.pages.messages import MESSAGES
from quotas.quantities import Credits

LANGUAGE_COOKIE = "gpupool_lang"


class Language(StrEnum):
    EN = "en"
    KO = "ko"

    @property
    def locale(self) -> str:
        """The CLDR locale Babel formats with."""
        return "ko_KR" if self is Language.KO else "en_GB"


def chosen_language(cookie: str | None, accept_language: str | None) -> Language:
    """The switch's choice, else the browser's preferred one of ours, else English."""
    if cookie in {language.value for language in Language}:
        return Language(cookie)
    best: tuple[float, Language] | None = None
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in {language.value for language in Language}:
            continue
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if best is None or weight > best[0]:
            best = (weight, Language(primary))
    return best[1] if best and best[0] > 0 else Language.EN


@dataclass(frozen=True)
class Words:
    """Messages and formats of one language, in one time zone; templates call it ``t``."""

    language: Language
    timezone: ZoneInfo

    def __call__(self, key: str, /, **values: object) -> str:
        """The message ``key`` in this language, with ``{name}`` filled from ``values``."""
        english, korean = MESSAGES[key]
        text = korean if self.language is Language.KO else english
        return text.format(**values) if values else text

    def number(self, value: float | int | Decimal, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return str(format_decimal(value, format=pattern, locale=self.language.locale))

    def rate(self, milli_per_gpu_hour: int) -> str:
        """A price in credits per GPU-hour, e.g. "1.0 credits/GPU-h"."""
        amount = format_decimal(
            Decimal(milli_per_gpu_hour) / 1000, "#,##0.0##", locale=self.language.locale
        )
        return self("unit.per_gpu_hour", rate=amount)

    def percent(self, fraction: float) -> str:
        return str(format_percent(fraction, format="#,##0.#%", locale=self.language.locale))

    def credits(self, amount: Credits | Decimal | str | None) -> str:
        """Credits to the thousandth, as the books keep them, with the unit."""
        if amount is None:
            return "—"
        value = amount.decimal if isinstance(amount, Credits) else Decimal(str(amount))
        return self("unit.credits", amount=self.number(value, 3))

    def when(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        local = moment.astimezone(self.timezone)
        return str(format_datetime(local, "yyyy-MM-dd HH:mm", locale=self.language.locale))

    def day(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        return str(format_date(moment.astimezone(self.timezone), "medium", self.language.locale))

    def duration(self, seconds: float) -> str:
        locale = self.language.locale
        return str(format_timedelta(int(seconds), threshold=1.5, format="short", locale=locale))

    def iso(self, moment: datetime | None) -> str:
        """For ``<time datetime=...>``: machine-readable, in UTC."""
        return moment.isoformat() if moment is not None else ""
