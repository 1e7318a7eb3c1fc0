"""Quotes: what a job would hold on each flavor it accepts, best deal first, before submitting.

A researcher reads a quote to choose flavors; it must price exactly what admission will hold and
list flavors in the order placement prefers them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from quotas.admission import Admit, decide
from quotas.errors import InvalidInput, NoSuchFlavor
from quotas.flavors import Flavor, RateCard
from quotas.quantities import Credits, Rate
from quotas.quote import quote, training_per_credit
from tests.quotas.builders import (
    A100,
    FLAVORS,
    H100,
    V100,
    a_job,
    a_pool,
    a_rate_card,
)

HOUR = 3600


@pytest.mark.parametrize(
    ("gpus", "seconds", "expected"),
    [
        (8, 4 * HOUR, {H100: "32", A100: "25.6", V100: "8"}),
        (1, HOUR, {H100: "1", A100: "0.8", V100: "0.25"}),
        (3, 20 * 60, {H100: "1", A100: "0.8", V100: "0.25"}),
        # 1 s of one GPU: 1000/3600 = 0.28 milli-credit on h100, rounded up to 1 milli everywhere.
        (1, 1, {H100: "0.001", A100: "0.001", V100: "0.001"}),
        # 7 s of three a100: 3 x 7 x 800 / 3600 = 4.67 milli -> 5.
        (3, 7, {H100: "0.006", A100: "0.005", V100: "0.002"}),
    ],
)
def test_a_quote_prices_every_flavor_exactly_rounding_up_to_a_milli_credit(
    gpus: int, seconds: int, expected: dict[str, str]
) -> None:
    lines = quote(FLAVORS, a_rate_card(), gpus, seconds)

    assert {line.flavor: line.credits for line in lines} == {
        flavor: Credits.of(Decimal(amount)) for flavor, amount in expected.items()
    }


def test_a_quote_records_the_rate_and_the_card_version_in_force() -> None:
    card = a_rate_card({A100: "0.7"}, version=7)

    (line,) = quote(FLAVORS, card, 2, HOUR, names=[A100])

    assert line.rate == Rate.of("0.7")
    assert line.rate_version == 7
    assert line.credits == Credits.of("1.4")
    assert line.relative_throughput == 0.8


def test_a_quote_matches_the_hold_admission_takes() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000)
        .cluster("national-daejeon", h100=(2, 8), a100=(2, 8), v100=(2, 8))
        .rate(V100, "0.1")
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(6).hours(3).build()

    lines = quote(snapshot.flavors, snapshot.rate_card, job.gpus, job.time_limit_seconds)
    admit = decide(snapshot, job)

    assert isinstance(admit, Admit)
    assert [(line.flavor, line.credits) for line in lines] == [
        (placement.flavor, placement.hold) for placement in admit.placements
    ]


# --- ordering -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "best_first", "best_training_per_credit"),
    [
        # The demo card prices every flavor by its throughput: a tie, listed by name.
        ({}, [A100, H100, V100], 1.0),
        ({V100: "0.1"}, [V100, A100, H100], 2.5),
        ({H100: "0.5"}, [H100, A100, V100], 2.0),
        ({A100: "0.4", V100: "0.5"}, [A100, H100, V100], 2.0),
        # An h100 at twice the reference price is the worst deal.
        ({H100: "2"}, [A100, V100, H100], 1.0),
    ],
)
def test_a_quote_lists_the_most_training_per_credit_first(
    rates: dict[str, str], best_first: list[str], best_training_per_credit: float
) -> None:
    lines = quote(FLAVORS, a_rate_card(rates), 4, HOUR)

    assert [line.flavor for line in lines] == best_first
    assert lines[0].training_per_credit == pytest.approx(best_training_per_credit)


def test_flavors_that_buy_the_same_training_per_credit_are_listed_by_name() -> None:
    # Throughput 1.001 at 1.001 credits per hour buys exactly what an h100 buys per credit,
    # though 1.001 * 1000 / 1001 < 1.0 in floating point: the quote must still call it a tie.
    flavors = {**FLAVORS, "gaudi-96g": Flavor("gaudi-96g", 96, relative_throughput=1.001)}
    demo = a_rate_card()
    card = RateCard(demo.version, demo.effective_from, {**demo.rates, "gaudi-96g": Rate(1001)})

    lines = quote(flavors, card, 1, HOUR, names=[H100, "gaudi-96g"])

    assert [line.flavor for line in lines] == ["gaudi-96g", H100]
    assert training_per_credit(1.001, Rate(1001)) == training_per_credit(1.0, Rate(1000))


def test_a_quote_keeps_only_the_named_flavors_or_those_with_enough_memory() -> None:
    card = a_rate_card()

    assert [line.flavor for line in quote(FLAVORS, card, 1, HOUR, names=[V100, H100])] == [
        H100,
        V100,
    ]
    assert [line.flavor for line in quote(FLAVORS, card, 1, HOUR, min_memory_gb=40)] == [
        A100,
        H100,
    ]
    assert [line.flavor for line in quote(FLAVORS, card, 1, HOUR, min_memory_gb=32)] == [
        A100,
        H100,
        V100,
    ]


# --- bad input ------------------------------------------------------------------------------------


KNOWN = "flavors: a100-80g, h100-80g, v100-32g"
"""What a refusal of a mistyped flavor lists: every flavor a job may name."""


@pytest.mark.parametrize(
    ("gpus", "seconds", "names", "min_memory_gb", "error", "message"),
    [
        (0, HOUR, (), None, InvalidInput, "a job needs at least one GPU, asked for 0"),
        (-1, HOUR, (), None, InvalidInput, "a job needs at least one GPU, asked for -1"),
        (1, 0, (), None, InvalidInput, "a job needs a positive time limit"),
        (1, -HOUR, (), None, InvalidInput, "a job needs a positive time limit"),
        (1, HOUR, ("h200-141g",), None, NoSuchFlavor, f"unknown flavor 'h200-141g'; {KNOWN}"),
        (1, HOUR, (H100, "tpu-v5"), None, NoSuchFlavor, f"unknown flavor 'tpu-v5'; {KNOWN}"),
        (
            1,
            HOUR,
            ("h100",),
            None,
            NoSuchFlavor,
            f"unknown flavor 'h100' (did you mean {H100}?); {KNOWN}",
        ),
        (
            1,
            HOUR,
            ("a100-80",),
            None,
            NoSuchFlavor,
            f"unknown flavor 'a100-80' (did you mean a100-80g?); {KNOWN}",
        ),
        (
            1,
            HOUR,
            ("v100-23g",),
            None,
            NoSuchFlavor,
            f"unknown flavor 'v100-23g' (did you mean v100-32g?); {KNOWN}",
        ),
        (1, HOUR, (), 141, InvalidInput, "no flavor with at least 141 GB in the pool"),
        (1, HOUR, (V100,), 40, InvalidInput, "no flavor with at least 40 GB in the pool"),
    ],
)
def test_a_quote_for_a_job_that_cannot_be_priced_raises_a_domain_error(
    gpus: int,
    seconds: int,
    names: tuple[str, ...],
    min_memory_gb: int | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as raised:
        quote(FLAVORS, a_rate_card(), gpus, seconds, names=names, min_memory_gb=min_memory_gb)

    assert str(raised.value) == message


def test_a_flavor_missing_from_the_rate_card_cannot_be_quoted() -> None:
    flavors = {**FLAVORS, "npu-64g": Flavor("npu-64g", 64, relative_throughput=0.5)}

    with pytest.raises(NoSuchFlavor, match="npu-64g"):
        quote(flavors, a_rate_card(), 1, HOUR)


def test_an_empty_pool_has_nothing_to_quote() -> None:
    with pytest.raises(InvalidInput, match="no flavor in the pool"):
        quote({}, a_rate_card(), 1, HOUR)
