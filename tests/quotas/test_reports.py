"""The reports' arithmetic: percentiles, interval clipping, credits and burn, spend, waits."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.errors import InvalidInput
from quotas.fairshare import fair_share
from quotas.ledger import Actor, Balances, Ledger
from quotas.quantities import Credits
from quotas.reports import (
    Capacity,
    RunInterval,
    SpendBy,
    SpendItem,
    burn,
    credits_by_account,
    fair_share_rows,
    overlap_seconds,
    percentile,
    round_half_up,
    spend,
    usage_by_project,
    utilisation,
    wait_times,
    window,
)

NOW = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
HOUR = 3600
DAY = 24 * HOUR
WEEK = timedelta(days=7)
PERIOD = "2026-q4"
POOL, PROGRAM, ORGANIZATION, PROJECT = AccountKind


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def a_tree() -> AccountTree:
    return AccountTree.of(
        [
            Account("national", POOL),
            Account("universities", PROGRAM, "national", share=3),
            Account("startups", PROGRAM, "national", share=2),
            Account("kaist", ORGANIZATION, "universities"),
            Account("hanbit", ORGANIZATION, "startups"),
            Account("kaist-nlp", PROJECT, "kaist"),
            Account("kaist-protein", PROJECT, "kaist"),
            Account("hanbit-robot", PROJECT, "hanbit"),
        ]
    )


# -- percentiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([240, 240, 300], 50, 240),
        ([240, 240, 300], 90, 300),
        ([300, 240, 240], 99, 300),
        ([7], 50, 7),
        ([7], 99, 7),
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 90, 90),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 100, 100),
        ([1, 2, 3, 4], 50, 2),
        ([1, 2, 3, 4], 51, 3),
    ],
)
def test_percentiles_are_nearest_rank_so_each_is_a_real_value(
    values: list[float], percent: int, expected: float
) -> None:
    assert percentile(values, percent) == expected


def test_a_percentile_of_nothing_or_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidInput):
        percentile([], 50)
    with pytest.raises(InvalidInput):
        percentile([1.0], 0)
    with pytest.raises(InvalidInput):
        percentile([1.0], 101)


# -- intervals and windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 2, 2 * HOUR),  # inside
        (-1, 1, HOUR),  # started before the window
        (1, 5, 2 * HOUR),  # ends after it
        (-1, 5, 3 * HOUR),  # covers it
        (-2, -1, 0),  # before
        (3, 4, 0),  # after
        (3, 3, 0),  # at the end, empty
        (2, 1, 0),  # backwards
    ],
)
def test_overlap_is_clipped_to_the_window(start: float, end: float, expected: float) -> None:
    assert overlap_seconds(at(start), at(end), at(0), at(3)) == expected


def test_the_window_defaults_to_the_last_stretch_and_never_passes_now() -> None:
    assert window(None, None, NOW, WEEK) == (NOW - WEEK, NOW)
    assert window(at(-5), at(5), NOW, WEEK) == (at(-5), NOW)
    assert window(None, at(-1), NOW, WEEK) == (at(-1) - WEEK, at(-1))
    with pytest.raises(InvalidInput):
        window(at(-1), at(-2), NOW, WEEK)
    with pytest.raises(InvalidInput):
        window(at(1), None, NOW, WEEK)
    with pytest.raises(InvalidInput):
        window(None, datetime(1, 1, 2, tzinfo=UTC), NOW, WEEK)


def test_round_half_up_rounds_halves_away_from_zero() -> None:
    assert [round_half_up(n, 1000) for n in (499, 500, 1499, 1500, -500, -499)] == [
        0,
        1,
        1,
        2,
        -1,
        0,
    ]


# -- utilisation -----------------------------------------------------------------------------


def test_utilisation_counts_inventory_times_window_and_clipped_runs() -> None:
    capacities = [
        Capacity("daejeon", "h100-80g", "national", 16),
        Capacity("gwangju", "v100-32g", "national", 32),
    ]
    runs = [
        RunInterval("daejeon", "h100-80g", 8, at(-1), at(1)),  # 1h inside
        RunInterval("daejeon", "h100-80g", 2, at(1), at(1.5)),  # 0.5h inside
        RunInterval("daejeon", "h100-80g", 4, at(3), None),  # still running: until the end
        RunInterval("daejeon", "h100-80g", 8, at(-3), at(-2)),  # before: nothing
        RunInterval("old", "a100-80g", 1, at(0), at(2)),  # no inventory declared any more
    ]

    rows = utilisation(capacities, runs, at(0), at(4), {("daejeon", "h100-80g"): 2 * HOUR})

    by_key = {(row.cluster, row.flavor): row for row in rows}
    h100 = by_key[("daejeon", "h100-80g")]
    assert h100.total == 16 * 4 * HOUR
    assert h100.allocated == (8 * 1 + 2 * 0.5 + 4 * 1) * HOUR
    assert h100.down == 2 * HOUR
    assert h100.idle == h100.total - h100.allocated - 2 * HOUR
    assert h100.utilisation == pytest.approx(13 / 62 * 100)
    v100 = by_key[("gwangju", "v100-32g")]
    assert (v100.allocated, v100.idle, v100.utilisation) == (0, 32 * 4 * HOUR, 0)
    old = by_key[("old", "a100-80g")]
    assert (old.site, old.total, old.allocated, old.utilisation) == (None, 0, 2 * HOUR, None)
    assert list(by_key) == sorted(by_key)


def test_a_cluster_declared_within_the_window_counts_from_then() -> None:
    # a week's window; the H100s joined the pool an hour before its end and were 94% busy since
    week = at(-7 * 24)
    capacities = [
        Capacity("daejeon", "h100-80g", "national", 16, since=at(-1)),
        Capacity("gwangju", "v100-32g", "national", 32, since=at(-30 * 24)),  # long before
    ]
    runs = [RunInterval("daejeon", "h100-80g", 15, at(-1), None)]

    rows = {row.flavor: row for row in utilisation(capacities, runs, week, at(0))}

    assert rows["h100-80g"].total == 16 * HOUR
    assert rows["h100-80g"].utilisation == pytest.approx(15 / 16 * 100)  # not 0.56%
    assert rows["v100-32g"].total == 32 * 7 * DAY
    after = utilisation(capacities[:1], [], at(-10 * 24), at(-2))  # a window before it joined
    assert (after[0].total, after[0].utilisation) == (0, None)


# -- credits and burn ------------------------------------------------------------------------


def test_credits_roll_up_awarded_used_and_left_from_the_ledger() -> None:
    tree = a_tree()
    balances = Balances()
    who = Actor("admin", "test")

    def post(method: str, *args: object) -> None:
        balances.apply(getattr(Ledger(tree, balances, PERIOD), method)(*args))

    post("contribute", "msit", Credits.of(1000), who)
    post("appropriate", "universities", Credits.of(600), who)
    post("award", "universities", "kaist-nlp", Credits.of(100), who)
    post("award", "universities", "kaist-protein", Credits.of(50), who)
    post("hold", "kaist-nlp", "j1", Credits.of(16), who)
    post("charge", "kaist-nlp", "j1", Credits.of(10), who)
    post("refund", "kaist-nlp", "j1", Credits.of(2), who)

    found = credits_by_account(tree, balances, PERIOD)

    nlp = found["kaist-nlp"]
    assert (nlp.awarded, nlp.spent, nlp.held, nlp.available) == (
        Credits.of(100),
        Credits.of(8),
        Credits.of(6),
        Credits.of(86),
    )
    assert nlp.uncharged == Credits.of(92)
    assert found["kaist"].awarded == Credits.of(150)
    assert found["kaist"].spent == Credits.of(8)
    assert found["universities"].awarded == Credits.of(600)
    assert found["universities"].uncharged == Credits.of(592)
    assert found["national"].awarded == Credits.of(1000)
    assert found["startups"].awarded == Credits.zero()
    assert credits_by_account(tree, balances, "another")["national"].awarded == Credits.zero()


def test_burn_projects_when_the_credits_left_run_out() -> None:
    found = burn(Credits.of(7).milli, Credits.of(10), NOW, WEEK)  # 1 credit a day, 10 left

    assert found.per_day == Credits.of(1)
    assert found.exhausted_on == (NOW + timedelta(days=10)).date()


def test_burn_rounds_the_rate_and_keeps_the_exact_projection() -> None:
    found = burn(Credits.of(4).milli, Credits.of(2), NOW, WEEK)  # 4/7 a day

    assert found.per_day == Credits(571)
    assert found.exhausted_on == (NOW + timedelta(days=3.5)).date()


def test_credits_that_outlast_the_period_are_not_exhausted_within_it() -> None:
    ends = NOW + timedelta(days=30)
    far = burn(Credits.of(7).milli, Credits.of(3650), NOW, WEEK, period_ends=ends)  # 10 years
    near = burn(Credits.of(7).milli, Credits.of(10), NOW, WEEK, period_ends=ends)
    spent = burn(1000, Credits.zero(), NOW, WEEK, period_ends=NOW - timedelta(days=1))

    assert (far.exhausted_on, far.outlasts_period) == ((NOW + timedelta(days=3650)).date(), True)
    assert far.per_day == Credits.of(1)
    assert (near.exhausted_on, near.outlasts_period) == ((NOW + timedelta(days=10)).date(), False)
    assert (spent.exhausted_on, spent.outlasts_period) == (NOW.date(), False)
    assert not burn(0, Credits.of(5), NOW, WEEK, period_ends=ends).outlasts_period


def test_no_burn_means_no_exhaustion_and_nothing_left_means_today() -> None:
    assert burn(0, Credits.of(5), NOW, WEEK).exhausted_on is None
    assert burn(-500, Credits.of(5), NOW, WEEK).per_day == Credits.zero()
    assert burn(1000, Credits.zero(), NOW, WEEK).exhausted_on == NOW.date()
    assert burn(1, Credits.of(10**15), NOW, WEEK).exhausted_on is None  # past the calendar
    with pytest.raises(InvalidInput):
        burn(1000, Credits.of(1), NOW, timedelta(0))


def test_fair_share_rows_join_share_gpus_credits_and_burn_per_account() -> None:
    tree = a_tree()
    usage = usage_by_project(
        [("kaist-nlp", at(-1), 4_000), ("hanbit-robot", at(-2), 1_000)], NOW, 7 * DAY
    )
    shares = fair_share(tree, usage)
    balances = Balances()
    who = Actor("admin", "test")
    for method, args in (
        ("contribute", ("msit", Credits.of(100), who)),
        ("appropriate", ("universities", Credits.of(100), who)),
        ("award", ("universities", "kaist-nlp", Credits.of(30), who)),
    ):
        balances.apply(getattr(Ledger(tree, balances, PERIOD), method)(*args))
    credits = credits_by_account(tree, balances, PERIOD)
    recent = {"kaist-nlp": 6_000}  # charged net of refunds over the last week

    rows = fair_share_rows(
        tree,
        shares,
        credits,
        {"kaist-nlp": 8, "hanbit-robot": 4},
        {"kaist-protein": 16},
        recent,
        NOW,
        ["national", "universities", "kaist-nlp", "kaist-protein"],
    )

    by_name = {row.name: row for row in rows}
    assert [row.name for row in rows] == ["national", "universities", "kaist-nlp", "kaist-protein"]
    nlp = by_name["kaist-nlp"]
    assert nlp.parent == "kaist"
    assert nlp.usage == shares.explain("kaist-nlp").usage
    assert nlp.usage == pytest.approx(4 * 0.5 ** (1 / (7 * 24)))
    assert nlp.running_gpus == 8
    assert nlp.burn.per_day == Credits(round_half_up(6_000, 7))
    assert nlp.burn.exhausted_on == (NOW + timedelta(days=30 * 7 / 6)).date()
    assert by_name["national"].running_gpus == 12
    assert by_name["universities"].pending_gpus == 16
    assert by_name["kaist-protein"].level_fs == math.inf  # a share and no usage
    assert by_name["kaist-protein"].burn.exhausted_on is None


# -- spend and waits -------------------------------------------------------------------------


def test_spend_groups_net_charges_and_prices_them_per_funder() -> None:
    tree = a_tree()
    items = [
        SpendItem("kaist-nlp", "msit", "j1", 4_000, "h100-80g", "national"),
        SpendItem("kaist-nlp", "gyeonggi", "j1", 1_000, "h100-80g", "national"),
        SpendItem("kaist-protein", "msit", "j2", 334, "h100-80g", "national"),
        SpendItem("kaist-protein", "msit", "j2", -334, "h100-80g", "national"),  # refunded
        SpendItem("hanbit-robot", "gyeonggi", "j3", 2_500, "v100-32g", "foreign_cloud"),
        SpendItem("hanbit-robot", "gyeonggi", "j4", 1, None, None),  # placement forgotten
    ]
    prices = {"msit": 3_500, "gyeonggi": 3_000}

    def table(by: SpendBy) -> list[tuple[str | None, str, int, int]]:
        return [
            (row.key, str(row.credits), row.krw, row.jobs) for row in spend(tree, items, by, prices)
        ]

    assert table(SpendBy.FUNDER) == [
        ("gyeonggi", "3.501", 10_503, 3),
        ("msit", "4.0", 14_000, 2),
    ]
    assert table(SpendBy.PROGRAM) == [
        ("startups", "2.501", 7_503, 2),
        ("universities", "5.0", 17_000, 2),
    ]
    assert table(SpendBy.ORGANIZATION) == [
        ("hanbit", "2.501", 7_503, 2),
        ("kaist", "5.0", 17_000, 2),
    ]
    assert table(SpendBy.PROJECT)[1] == ("kaist-nlp", "5.0", 17_000, 1)
    assert table(SpendBy.PROJECT)[2] == ("kaist-protein", "0.0", 0, 1)
    assert table(SpendBy.FLAVOR) == [
        ("h100-80g", "5.0", 17_000, 2),
        ("v100-32g", "2.5", 7_500, 1),
        (None, "0.001", 3, 1),
    ]
    assert table(SpendBy.SITE) == [
        ("foreign_cloud", "2.5", 7_500, 1),
        ("national", "5.0", 17_000, 2),
        (None, "0.001", 3, 1),
    ]


def test_wait_times_per_program_with_nearest_rank_percentiles() -> None:
    tree = a_tree()
    waits = [
        ("kaist-nlp", at(0), at(0) + timedelta(seconds=300)),
        ("kaist-protein", at(0), at(0) + timedelta(seconds=240)),
        ("kaist-nlp", at(1), at(1) + timedelta(seconds=240)),
        ("hanbit-robot", at(0), at(0) + timedelta(seconds=60)),
    ]

    rows = wait_times(tree, waits)

    assert [(row.program, row.jobs, row.percentiles) for row in rows] == [
        ("startups", 1, ((50, 60.0), (90, 60.0), (99, 60.0))),
        ("universities", 3, ((50, 240.0), (90, 300.0), (99, 300.0))),
    ]


def test_usage_is_decayed_per_project_and_never_negative() -> None:
    usage = usage_by_project(
        [("a", NOW - timedelta(days=7), 2_000), ("b", NOW, 1_000), ("b", NOW, -3_000)], NOW, 7 * DAY
    )
    assert usage == {"a": pytest.approx(1.0), "b": 0.0}
