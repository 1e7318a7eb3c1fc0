"""A quote: what a job would cost on each flavor it accepts, before it is submitted.

Each line gives the exchange rate in force, the credits the job would hold (GPUs x time limit x
rate, rounded up to a milli-credit) and the training it buys per credit, so a researcher can see
that an older, cheaper flavor may still be the better deal, or not. Lines are ordered the way
placement prefers them: most training per credit first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from quotas.errors import InvalidInput
from quotas.flavors import Flavor, RateCard, acceptable_flavors
from quotas.quantities import MILLI, Credits, Rate


def training_per_credit(relative_throughput: float, rate: Rate) -> Fraction:
    """Reference-GPU-hours of training one credit buys, exactly, for ordering flavors.

    The throughput is taken as written (its shortest decimal form), so two flavors that buy the
    same training per credit compare equal and fall back to the name, instead of being ordered
    by float rounding noise (0.071 / 71 != 1.0 / 1000 in floating point).
    """
    return Fraction(repr(relative_throughput)) * MILLI / rate.milli_per_gpu_hour


@dataclass(frozen=True, slots=True)
class QuoteLine:
    flavor: str
    rate: Rate
    rate_version: int
    credits: Credits
    relative_throughput: float

    @property
    def training_per_credit(self) -> float:
        """Reference-GPU-hours of training bought by one credit on this flavor."""
        return self.relative_throughput * 1000 / self.rate.milli_per_gpu_hour


def quote(
    flavors: Mapping[str, Flavor],
    rate_card: RateCard,
    gpus: int,
    time_limit_seconds: int,
    names: Iterable[str] = (),
    min_memory_gb: int | None = None,
) -> list[QuoteLine]:
    """What ``gpus`` GPUs for ``time_limit_seconds`` would hold on each acceptable flavor.

    Raises ``InvalidInput`` for zero GPUs, a time limit <= 0 or no flavor with enough memory, and
    ``NoSuchFlavor`` for a flavor the pool or the rate card does not know.
    """
    if gpus <= 0:
        raise InvalidInput(f"a job needs at least one GPU, asked for {gpus}")
    if time_limit_seconds <= 0:
        raise InvalidInput("a job needs a positive time limit")
    lines = [
        QuoteLine(
            flavor=flavor.name,
            rate=rate_card.rate(flavor.name),
            rate_version=rate_card.version,
            credits=rate_card.cost(flavor.name, gpus, time_limit_seconds),
            relative_throughput=flavor.relative_throughput,
        )
        for flavor in acceptable_flavors(flavors, names, min_memory_gb)
    ]
    if not lines:
        memory = f" with at least {min_memory_gb} GB" if min_memory_gb is not None else ""
        raise InvalidInput(f"no flavor{memory} in the pool")
    return sorted(
        lines,
        key=lambda line: (-training_per_credit(line.relative_throughput, line.rate), line.flavor),
    )
