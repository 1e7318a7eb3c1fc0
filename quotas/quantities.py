"""Quantities as value types on integers: credits in milli-credits, time in seconds.

Money and budgets are never floats. A credit is one reference-flavor GPU-hour; the ledger stores
milli-credits. Converting GPU-time at an exchange rate rounds *up* to the next milli-credit, so a
hold always covers the charge it reserves for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import total_ordering

MILLI = 1000
SECONDS_PER_HOUR = 3600


@total_ordering
@dataclass(frozen=True, slots=True)
class Credits:
    """An amount of credits, stored as integer milli-credits."""

    milli: int

    @classmethod
    def of(cls, credits: int | str | Decimal) -> Credits:
        """Credits from a whole or decimal number of credits ("12.5" -> 12,500 milli)."""
        try:
            value = Decimal(credits) * MILLI
        except ArithmeticError:
            raise ValueError(f"{credits!r} is not an amount of credits") from None
        if not value.is_finite():
            raise ValueError(f"{credits!r} is not an amount of credits")
        if value != value.to_integral_value():
            raise ValueError(f"{credits} credits is finer than one milli-credit")
        return cls(int(value))

    @classmethod
    def zero(cls) -> Credits:
        return NO_CREDITS

    def __add__(self, other: Credits) -> Credits:
        return Credits(self.milli + other.milli)

    def __sub__(self, other: Credits) -> Credits:
        return Credits(self.milli - other.milli)

    def __neg__(self) -> Credits:
        return Credits(-self.milli)

    def __lt__(self, other: Credits) -> bool:
        return self.milli < other.milli

    def __bool__(self) -> bool:
        return self.milli != 0

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.milli) / MILLI

    def __str__(self) -> str:
        return f"{self.decimal:.1f}" if self.milli % 100 == 0 else f"{self.decimal:.3f}"


NO_CREDITS = Credits(0)
"""Zero credits, made once: a cycle asks ``Credits.zero()`` hundreds of thousands of times."""


@dataclass(frozen=True, slots=True)
class Rate:
    """An exchange rate: milli-credits charged per accelerator-hour of one flavor."""

    milli_per_gpu_hour: int

    def __post_init__(self) -> None:
        if self.milli_per_gpu_hour <= 0:
            raise ValueError("an exchange rate must be positive")

    @classmethod
    def of(cls, credits_per_gpu_hour: str | Decimal | int) -> Rate:
        return cls(Credits.of(credits_per_gpu_hour).milli)

    def cost(self, gpus: int, seconds: int) -> Credits:
        """What ``gpus`` accelerators for ``seconds`` cost, rounded up to a milli-credit."""
        if gpus < 0 or seconds < 0:
            raise ValueError("GPU-time cannot be negative")
        numerator = gpus * seconds * self.milli_per_gpu_hour
        return Credits(-(-numerator // SECONDS_PER_HOUR))

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.milli_per_gpu_hour) / MILLI

    def __str__(self) -> str:
        text = f"{self.decimal:.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text


def format_duration(seconds: int) -> str:
    """The shortest reading of a duration: 600 -> "10m", 5400 -> "1h30m", 90061 -> "1d1h1m1s"."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_duration(text: str) -> int:
    """Seconds in a duration such as "90s", "45m", "4h", "2d" or "1h30m"."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0, ""
    for char in text.strip().lower():
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise ValueError(f"cannot read duration {text!r}; write e.g. 4h, 90m or 1h30m")
    if number:
        raise ValueError(f"duration {text!r} needs a unit (s, m, h or d)")
    if not text.strip():
        raise ValueError("a duration is needed; write e.g. 4h, 90m or 1h30m")
    return total
