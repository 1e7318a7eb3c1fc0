"""Flavors and the versioned rate card: what an accelerator-hour costs and which card applies.

A researcher is charged in exact milli-credits, never zero for real GPU time; the card in force
at admission is the newest one already effective; a job's flavor list or memory floor picks the
flavors it accepts; and the demo exchange rates are the ones Gavel's measured throughputs give.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quotas.demo import FLAVORS as DEMO_FLAVORS
from quotas.demo import RATES as DEMO_RATES
from quotas.errors import InvalidInput, NoSuchFlavor
from quotas.flavors import (
    Flavor,
    RateCard,
    acceptable_flavors,
    median_throughput_ratios,
    rate_card_in_force,
)
from quotas.quantities import Credits, Rate

GAVEL_TRACE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "traces"
    / "gavel"
    / "simulation_throughputs.json"
)

JAN = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = 3600

FLAVORS = {
    "h100-80g": Flavor("h100-80g", memory_gb=80, relative_throughput=1.0),
    "a100-40g": Flavor("a100-40g", memory_gb=40, relative_throughput=0.7),
    "a100-80g": Flavor("a100-80g", memory_gb=80, relative_throughput=0.8),
    "v100-32g": Flavor("v100-32g", memory_gb=32, relative_throughput=0.25),
}


def a_card(version: int = 1, effective_from: datetime = JAN, **rates: str) -> RateCard:
    chosen = rates or {"h100-80g": "1.0", "a100-80g": "0.8", "v100-32g": "0.25"}
    return RateCard(
        version, effective_from, {name.replace("_", "-"): Rate.of(r) for name, r in chosen.items()}
    )


# --- Flavor --------------------------------------------------------------------------------------


def test_a_flavor_pins_ray_jobs_by_its_own_name_unless_told_otherwise() -> None:
    assert Flavor("h100-80g", 80, 1.0).ray_resource == "h100-80g"
    assert Flavor("npu-x", 64, 0.5, ray_resource="NPU").ray_resource == "NPU"
    assert Flavor("h100-80g", 80, 1.0).kubernetes_resource == "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("name", "memory_gb", "throughput"),
    [("", 80, 1.0), (" h100", 80, 1.0), ("h100", 0, 1.0), ("h100", -1, 1.0), ("h100", 80, 0.0)],
)
def test_a_flavor_needs_a_name_memory_and_throughput(
    name: str, memory_gb: int, throughput: float
) -> None:
    with pytest.raises(InvalidInput):
        Flavor(name, memory_gb, throughput)


# --- RateCard.cost -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "gpus", "seconds", "expected"),
    [
        ("h100-80g", 8, 4 * HOUR, "32"),
        ("a100-80g", 8, 4 * HOUR, "25.6"),
        ("v100-32g", 8, 4 * HOUR, "8"),
        ("a100-80g", 1, 90 * 60, "1.2"),
        # 1 GPU for 1 s at 1.0 credits/h is 0.28 milli-credit: charged 1 milli, not 0.
        ("h100-80g", 1, 1, "0.001"),
        ("v100-32g", 1, 1, "0.001"),
        # 3 x 7 s x 800 / 3600 = 4.67 milli -> 5.
        ("a100-80g", 3, 7, "0.005"),
        ("h100-80g", 0, HOUR, "0"),
    ],
)
def test_rate_card_cost_in_exact_milli_credits_rounded_up(
    flavor: str, gpus: int, seconds: int, expected: str
) -> None:
    assert a_card().cost(flavor, gpus, seconds) == Credits.of(expected)


def test_rate_card_gives_each_flavors_rate() -> None:
    assert a_card().rate("a100-80g") == Rate.of("0.8")


def test_an_unknown_flavor_has_no_rate() -> None:
    card = a_card()
    with pytest.raises(NoSuchFlavor, match="unknown flavor 'tpu-v5'") as caught:
        card.cost("tpu-v5", 1, HOUR)
    assert caught.value.name == "tpu-v5"
    with pytest.raises(NoSuchFlavor):
        card.rate("tpu-v5")


# --- rate_card_in_force --------------------------------------------------------------------------


def test_the_newest_card_already_effective_is_in_force() -> None:
    v1 = a_card(1, JAN)
    v2 = a_card(2, JAN + timedelta(days=30), h100_80g="1.2")
    v3 = a_card(3, JAN + timedelta(days=60), h100_80g="1.5")
    cards = [v3, v1, v2]
    assert rate_card_in_force(cards, JAN) is v1
    assert rate_card_in_force(cards, JAN + timedelta(days=29)) is v1
    assert rate_card_in_force(cards, JAN + timedelta(days=30)) is v2  # effective at its instant
    assert rate_card_in_force(cards, JAN + timedelta(days=45)) is v2
    assert rate_card_in_force(cards, JAN + timedelta(days=365)) is v3


def test_a_future_card_does_not_reprice_today() -> None:
    today = a_card(1, JAN)
    tomorrow = a_card(2, JAN + timedelta(days=1), h100_80g="2.0")
    in_force = rate_card_in_force([today, tomorrow], JAN + timedelta(hours=23))
    assert in_force.cost("h100-80g", 1, HOUR) == Credits.of("1")


def test_of_two_cards_effective_at_once_the_higher_version_wins() -> None:
    v4 = a_card(4, JAN, h100_80g="1.1")
    v5 = a_card(5, JAN, h100_80g="1.3")
    assert rate_card_in_force([v5, v4], JAN + timedelta(days=1)) is v5
    assert rate_card_in_force([v4, v5], JAN + timedelta(days=1)) is v5


def test_the_card_that_took_effect_last_applies_whatever_its_version() -> None:
    # v3 was written later but back-dated; v2 took effect after it, so v2 prices today.
    v2 = a_card(2, JAN + timedelta(days=20), h100_80g="1.2")
    v3 = a_card(3, JAN + timedelta(days=10), h100_80g="1.5")
    assert rate_card_in_force([v2, v3], JAN + timedelta(days=15)) is v3
    assert rate_card_in_force([v2, v3], JAN + timedelta(days=25)) is v2


@pytest.mark.parametrize("cards", [[], [a_card(1, JAN + timedelta(days=1))]])
def test_no_card_in_force_is_refused(cards: list[RateCard]) -> None:
    with pytest.raises(InvalidInput, match="no rate card is in force at 2025-01-01"):
        rate_card_in_force(cards, JAN)


# --- acceptable_flavors --------------------------------------------------------------------------


def test_named_flavors_in_the_order_given_without_repeats() -> None:
    chosen = acceptable_flavors(FLAVORS, ["v100-32g", "h100-80g", "v100-32g"])
    assert [flavor.name for flavor in chosen] == ["v100-32g", "h100-80g"]


def test_an_unknown_named_flavor_is_refused() -> None:
    with pytest.raises(NoSuchFlavor, match="unknown flavor 'h200-141g'"):
        acceptable_flavors(FLAVORS, ["h100-80g", "h200-141g"])


def test_no_names_and_no_floor_accepts_every_flavor() -> None:
    assert acceptable_flavors(FLAVORS) == list(FLAVORS.values())


@pytest.mark.parametrize(
    ("min_memory_gb", "expected"),
    [
        (80, ["h100-80g", "a100-80g"]),
        (40, ["h100-80g", "a100-40g", "a100-80g"]),
        (33, ["h100-80g", "a100-40g", "a100-80g"]),
        (32, ["h100-80g", "a100-40g", "a100-80g", "v100-32g"]),
        (81, []),
    ],
)
def test_a_memory_floor_accepts_every_flavor_with_enough_memory(
    min_memory_gb: int, expected: list[str]
) -> None:
    chosen = acceptable_flavors(FLAVORS, min_memory_gb=min_memory_gb)
    assert [flavor.name for flavor in chosen] == expected


def test_names_and_a_memory_floor_together_keep_named_flavors_with_enough_memory() -> None:
    chosen = acceptable_flavors(FLAVORS, ["v100-32g", "a100-80g"], min_memory_gb=40)
    assert [flavor.name for flavor in chosen] == ["a100-80g"]


# --- median_throughput_ratios --------------------------------------------------------------------


def gavel(**per_gpu: dict[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """A Gavel-format table: ``{gpu: {"('<job>', n)": {"null": steps/s}}}``."""
    return {
        gpu.replace("__", "_"): {key: {"null": value} for key, value in jobs.items()}
        for gpu, jobs in per_gpu.items()
    }


def test_median_throughput_ratios_on_a_hand_made_table() -> None:
    table = gavel(
        v100={
            "('ResNet-18', 1)": 10.0,
            "('LM', 1)": 20.0,
            "('A3C', 1)": 40.0,
            "('ResNet-18', 2)": 100.0,  # multi-GPU: ignored
        },
        p100={
            "('ResNet-18', 1)": 8.0,  # 0.8
            "('LM', 1)": 18.0,  # 0.9
            "('A3C', 1)": 20.0,  # 0.5
            "('ResNet-18', 2)": 1.0,
        },
        k80={
            "('ResNet-18', 1)": 2.0,  # 0.2
            "('LM', 1)": 6.0,  # 0.3
            "('A3C', 1)": 0.0,  # not measured: ignored
        },
        v100__unconsolidated={"('ResNet-18', 1)": 1.0},  # a placement variant: ignored
    )
    ratios = median_throughput_ratios(table, "v100")
    assert ratios == {"p100": pytest.approx(0.8), "k80": pytest.approx(0.25)}


def test_a_gpu_with_no_shared_single_gpu_job_gets_no_ratio() -> None:
    table = gavel(
        v100={"('LM', 1)": 20.0},
        k80={"('CycleGAN', 1)": 2.0},
        p100={"('LM', 1)": 10.0},
    )
    assert median_throughput_ratios(table, "v100") == {"p100": pytest.approx(0.5)}


# --- the demo rate card against the real trace ---------------------------------------------------


def test_the_demo_rate_card_matches_gavels_measured_throughputs() -> None:
    if not GAVEL_TRACE.exists():
        pytest.skip(f"Gavel trace not found at {GAVEL_TRACE}")
    ratios = median_throughput_ratios(json.loads(GAVEL_TRACE.read_text()), "v100")
    flavors = {flavor.name: flavor for flavor in DEMO_FLAVORS}

    # Mapped one generation up: P100 -> A100 and K80 -> V100, against V100 -> H100.
    assert flavors["h100-80g"].relative_throughput == 1.0
    assert ratios["p100"] == pytest.approx(flavors["a100-80g"].relative_throughput, abs=0.02)
    assert ratios["k80"] == pytest.approx(flavors["v100-32g"].relative_throughput, abs=0.02)

    assert set(DEMO_RATES) == set(flavors)
    for name, rate in DEMO_RATES.items():
        assert float(rate.decimal) == pytest.approx(flavors[name].relative_throughput, abs=0.05)
