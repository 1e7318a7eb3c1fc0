"""Quantities: credits as integer milli-credits, exchange rates, and durations people type.

Money never passes through a float: "12.5" credits is exactly 12,500 milli-credits, a cost is
rounded up so a hold always covers its charge, and a duration a person types either reads as
they meant it or is refused with a message saying how to write it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotas.quantities import Credits, Rate, parse_duration

milli_amounts = st.integers(min_value=-(10**12), max_value=10**12)


# --- Credits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_credits", "milli"),
    [
        ("12.5", 12_500),
        ("0.001", 1),
        ("1", 1_000),
        (7, 7_000),
        (0, 0),
        ("-3.25", -3_250),
        (Decimal("0.25"), 250),
        ("1e3", 1_000_000),
        ("12.5000", 12_500),
    ],
)
def test_credits_of_reads_whole_and_decimal_credits_exactly(
    given_credits: int | str | Decimal, milli: int
) -> None:
    assert Credits.of(given_credits).milli == milli


@pytest.mark.parametrize("finer", ["0.0001", "12.5005", Decimal("1.0001"), "1e-4"])
def test_credits_of_refuses_amounts_finer_than_one_milli_credit(finer: str | Decimal) -> None:
    with pytest.raises(ValueError, match="finer than one milli-credit"):
        Credits.of(finer)


@given(milli_amounts)
def test_credits_of_its_own_decimal_round_trips(milli: int) -> None:
    assert Credits.of(Credits(milli).decimal) == Credits(milli)
    assert Credits.of(str(Credits(milli).decimal)) == Credits(milli)


@given(milli_amounts, milli_amounts)
def test_credits_arithmetic_is_exact_integer_arithmetic(a: int, b: int) -> None:
    assert (Credits(a) + Credits(b)).milli == a + b
    assert (Credits(a) - Credits(b)).milli == a - b
    assert (-Credits(a)).milli == -a
    assert Credits(a) + Credits(b) - Credits(b) == Credits(a)


def test_a_tenth_plus_a_fifth_is_exactly_three_tenths() -> None:
    # The float trap (0.1 + 0.2 != 0.3) must not exist for credits.
    assert Credits.of("0.1") + Credits.of("0.2") == Credits.of("0.3")


@given(milli_amounts, milli_amounts)
def test_credits_order_like_their_milli_credits(a: int, b: int) -> None:
    x, y = Credits(a), Credits(b)
    assert (x < y) == (a < b)
    assert (x <= y) == (a <= b)
    assert (x > y) == (a > b)
    assert (x >= y) == (a >= b)
    assert (x == y) == (a == b)


def test_credits_sort_and_compare_as_amounts() -> None:
    amounts = [Credits.of("2.5"), Credits.of("-1"), Credits.zero(), Credits.of("0.001")]
    assert sorted(amounts) == [
        Credits.of("-1"),
        Credits.zero(),
        Credits.of("0.001"),
        Credits.of("2.5"),
    ]
    assert max(amounts) == Credits.of("2.5")
    assert Credits.of("1") <= Credits.of("1.000")


def test_only_zero_credits_is_falsy() -> None:
    assert not Credits.zero()
    assert Credits(1)
    assert Credits(-1)


@pytest.mark.parametrize(
    ("milli", "text"),
    [
        (12_500, "12.5"),
        (12_000, "12.0"),
        (0, "0.0"),
        (1, "0.001"),
        (12_345, "12.345"),
        (250, "0.250"),
        (-3_500, "-3.5"),
        (1_000_000, "1000.0"),
    ],
)
def test_credits_print_as_credits_not_milli_credits(milli: int, text: str) -> None:
    assert str(Credits(milli)) == text


@given(milli_amounts)
def test_printed_credits_read_back_to_the_same_amount(milli: int) -> None:
    assert Credits.of(str(Credits(milli))) == Credits(milli)


# --- Rate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("milli", [0, -1, -1000])
def test_an_exchange_rate_must_be_positive(milli: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Rate(milli)


@pytest.mark.parametrize("text", ["0", "-0.5"])
def test_rate_of_refuses_zero_and_negative_rates(text: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        Rate.of(text)


def test_rate_of_reads_credits_per_gpu_hour() -> None:
    assert Rate.of("0.8").milli_per_gpu_hour == 800
    assert Rate.of(1).milli_per_gpu_hour == 1000
    assert Rate.of(Decimal("0.25")).milli_per_gpu_hour == 250


@pytest.mark.parametrize(
    ("rate", "gpus", "seconds", "milli"),
    [
        ("1.0", 8, 4 * 3600, 32_000),
        ("0.8", 8, 4 * 3600, 25_600),
        ("0.25", 1, 3600, 250),
        ("1.0", 3, 20 * 60, 1_000),
        # 1 s of one GPU at 1.0/h is 0.28 milli-credit: rounded up to 1, never down to 0.
        ("1.0", 1, 1, 1),
        # 3 x 7 s x 800 / 3600 = 4.67 milli -> 5.
        ("0.8", 3, 7, 5),
        # Exactly divisible: no rounding.
        ("1.0", 1, 36, 10),
        ("1.0", 0, 3600, 0),
        ("1.0", 8, 0, 0),
    ],
)
def test_rate_cost_is_rounded_up_to_the_next_milli_credit(
    rate: str, gpus: int, seconds: int, milli: int
) -> None:
    assert Rate.of(rate).cost(gpus, seconds) == Credits(milli)


@given(
    st.integers(min_value=1, max_value=10**7),
    st.integers(min_value=0, max_value=1024),
    st.integers(min_value=0, max_value=10**8),
)
def test_a_cost_covers_the_exact_charge_and_overshoots_by_less_than_one_milli(
    milli_per_hour: int, gpus: int, seconds: int
) -> None:
    cost = Rate(milli_per_hour).cost(gpus, seconds).milli
    exact = gpus * seconds * milli_per_hour  # in milli-credit-seconds
    assert cost * 3600 >= exact
    assert (cost - 1) * 3600 < exact or cost == 0


@pytest.mark.parametrize(("gpus", "seconds"), [(-1, 3600), (1, -1), (-2, -2)])
def test_negative_gpu_time_has_no_cost(gpus: int, seconds: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        Rate.of("1").cost(gpus, seconds)


@pytest.mark.parametrize(
    ("rate", "text"), [("1", "1.0"), ("0.8", "0.8"), ("0.25", "0.25"), ("1.125", "1.125")]
)
def test_rates_print_as_credits_per_gpu_hour(rate: str, text: str) -> None:
    assert str(Rate.of(rate)) == text


# --- parse_duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4h", 4 * 3600),
        ("90m", 90 * 60),
        ("1h30m", 90 * 60),
        ("2d", 2 * 86400),
        ("90s", 90),
        ("1d2h3m4s", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("4H", 4 * 3600),
        (" 45m ", 45 * 60),
        ("30m1h", 90 * 60),
    ],
)
def test_parse_duration_reads_what_people_write(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "4x", "h", "1.5h", "-1h", "4 h", "4h 30m", "1h+30m"])
def test_parse_duration_refuses_unreadable_text_saying_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 4h, 90m or 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["4", "1h30", "90"])
def test_parse_duration_refuses_a_number_without_a_unit(text: str) -> None:
    with pytest.raises(ValueError, match=r"needs a unit \(s, m, h or d\)"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_duration_refuses_an_empty_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_parse_duration_adds_up_every_unit(days: int, hours: int, minutes: int, secs: int) -> None:
    text = f"{days}d{hours}h{minutes}m{secs}s"
    assert parse_duration(text) == ((days * 24 + hours) * 60 + minutes) * 60 + secs


@pytest.mark.parametrize("text", ["abc", "Infinity", "NaN", "1e3x"])
def test_credits_refuse_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="is not an amount of credits"):
        Credits.of(text)
