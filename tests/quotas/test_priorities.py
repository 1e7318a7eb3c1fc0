"""Priority grants, pure: which classes need one, who may grant, the rule at submission, and
the arithmetic of who used urgent work in the fair-share report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quotas.access import Principal, Role, Scope, principal
from quotas.accounts import Account, AccountKind, AccountTree
from quotas.admission import PriorityClass
from quotas.errors import Forbidden, InvalidInput, PriorityNotGranted
from quotas.priorities import (
    GRANTED_CLASSES,
    PriorityGrant,
    check_priority,
    may_grant,
    needs_grant,
)
from quotas.quantities import Credits
from quotas.reports import NO_PRIORITY_USE, PriorityRun, PriorityUse, SpendItem, priority_use

NOW = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
HOUR = 3600
URGENT, NORMAL, OPPORTUNISTIC = PriorityClass
POOL, PROGRAM, ORGANIZATION, PROJECT = AccountKind


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def a_tree() -> AccountTree:
    return AccountTree.of(
        [
            Account("national", POOL),
            Account("universities", PROGRAM, "national"),
            Account("startups", PROGRAM, "national"),
            Account("kaist", ORGANIZATION, "universities"),
            Account("hanbit", ORGANIZATION, "startups"),
            Account("kaist-nlp", PROJECT, "kaist"),
            Account("kaist-protein", PROJECT, "kaist"),
            Account("hanbit-robot", PROJECT, "hanbit"),
        ]
    )


def a_grant(expires_in_hours: float | None = None) -> PriorityGrant:
    expires = at(expires_in_hours) if expires_in_hours is not None else None
    return PriorityGrant("kaist-nlp", URGENT, "jaehyun.kim", NOW, expires)


# -- which classes need a grant --------------------------------------------------------------


def test_only_the_classes_above_normal_need_a_grant() -> None:
    assert GRANTED_CLASSES == (URGENT,)
    assert [needs_grant(each) for each in PriorityClass] == [True, False, False]


@pytest.mark.parametrize("priority", [NORMAL, OPPORTUNISTIC])
def test_a_grant_of_a_class_that_needs_none_is_refused(priority: PriorityClass) -> None:
    with pytest.raises(InvalidInput, match=f"{priority} work needs no grant"):
        PriorityGrant("kaist-nlp", priority, "jaehyun.kim", NOW)


@pytest.mark.parametrize("hours", [0, -1])
def test_a_grant_must_expire_after_it_is_made(hours: float) -> None:
    with pytest.raises(InvalidInput, match="must expire after it is made"):
        a_grant(expires_in_hours=hours)


def test_a_grant_expiry_needs_a_time_zone() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        PriorityGrant(
            "kaist-nlp",
            URGENT,
            "jaehyun.kim",
            NOW,
            datetime(2027, 1, 1),  # noqa: DTZ001 - naive on purpose
        )


def test_a_grant_is_in_force_until_it_expires_or_forever() -> None:
    assert a_grant().in_force(at(10_000))
    lapsing = a_grant(expires_in_hours=24)
    assert lapsing.in_force(at(23.99))
    assert not lapsing.in_force(at(24))


# -- who may grant ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (principal("admin", pool_roles=[Role.ADMIN]), True),
        (principal("jaehyun.kim", programs=["universities"]), True),
        (principal("minji.park", programs=["startups"]), False),
        (principal("seoyeon.lee", projects={"kaist-nlp": Role.PI}), False),
        (principal("jiwoo.jung", projects={"kaist-nlp": Role.RESEARCHER}), False),
        (principal("auditor.kim", pool_roles=[Role.AUDITOR]), False),
        (principal("jaehyun.kim", programs=["universities"], scopes=[Scope.READ]), False),
        (principal("admin", pool_roles=[Role.ADMIN], scopes=[Scope.JOBS]), False),
    ],
    ids=["admin", "pm", "other-pm", "pi", "researcher", "auditor", "pm-read-token", "admin-jobs"],
)
def test_only_the_programs_manager_or_an_admin_may_grant(who: Principal, allowed: bool) -> None:
    assert may_grant(who, a_tree(), "kaist-nlp") is allowed


# -- the rule at submission ------------------------------------------------------------------


@pytest.mark.parametrize("priority", [NORMAL, OPPORTUNISTIC])
def test_normal_and_opportunistic_work_needs_no_grant(priority: PriorityClass) -> None:
    check_priority(a_tree(), "kaist-nlp", priority, None, NOW)


def test_urgent_work_without_a_grant_is_refused_saying_whom_to_ask() -> None:
    with pytest.raises(PriorityNotGranted) as refused:
        check_priority(a_tree(), "kaist-nlp", URGENT, None, NOW)

    assert isinstance(refused.value, Forbidden)  # answered 403, like every refusal of a right
    assert (refused.value.project, refused.value.priority) == ("kaist-nlp", "urgent")
    assert str(refused.value) == (
        "urgent work in kaist-nlp needs a priority grant, and kaist-nlp holds none; "
        "ask a program manager of universities for a grant, or submit it as normal"
    )


def test_urgent_work_with_a_grant_in_force_passes() -> None:
    check_priority(a_tree(), "kaist-nlp", URGENT, a_grant(), NOW)
    check_priority(a_tree(), "kaist-nlp", URGENT, a_grant(expires_in_hours=1), at(0.5))


def test_urgent_work_after_the_grant_lapsed_is_refused() -> None:
    with pytest.raises(PriorityNotGranted, match="kaist-nlp's grant of urgent work lapsed at"):
        check_priority(a_tree(), "kaist-nlp", URGENT, a_grant(expires_in_hours=1), at(1))


# -- who used urgent (the fair-share report's arithmetic) ------------------------------------


def a_run(job: str, project: str, gpus: int, start: float, end: float | None) -> PriorityRun:
    return PriorityRun(project, job, URGENT, gpus, at(start), at(end) if end is not None else None)


def charged(project: str, job: str, amount: str, priority: PriorityClass | None) -> SpendItem:
    return SpendItem(project, "msit", job, Credits.of(amount).milli, "h100-80g", None, priority)


def test_urgent_use_counts_jobs_clipped_gpu_time_and_net_credits_per_subtree() -> None:
    runs = [
        a_run("u1", "kaist-nlp", 8, start=-2, end=1),  # 1 h inside the window [0, 4)
        a_run("u2", "kaist-nlp", 2, start=3, end=None),  # still running: 1 h until 4
        a_run("u3", "hanbit-robot", 4, start=0, end=2),
        a_run("gone", "kaist-protein", 4, start=-3, end=-1),  # ended before the window
    ]
    spent = [
        charged("kaist-nlp", "u1", "8.0", URGENT),
        charged("kaist-nlp", "u1", "-1.5", URGENT),  # a refund
        charged("kaist-nlp", "n1", "100.0", NORMAL),
        charged("kaist-protein", "gone", "3.0", URGENT),
        charged("kaist-protein", "", "5.0", None),
    ]

    use = priority_use(a_tree(), URGENT, runs, spent, at(0), at(4))

    assert use["kaist-nlp"] == PriorityUse(2, 10 * HOUR, Credits.of("6.5"))
    assert use["hanbit-robot"] == PriorityUse(1, 8 * HOUR, Credits.zero())
    assert use["kaist-protein"] == PriorityUse(0, 0.0, Credits.of("3.0"))
    assert use["kaist"] == PriorityUse(2, 10 * HOUR, Credits.of("9.5"))
    assert use["national"] == PriorityUse(3, 18 * HOUR, Credits.of("9.5"))
    assert use["startups"] == PriorityUse(1, 8 * HOUR, Credits.zero())
    assert set(use) == {
        "national",
        "universities",
        "startups",
        "kaist",
        "hanbit",
        "kaist-nlp",
        "kaist-protein",
        "hanbit-robot",
    }


def test_urgent_use_ignores_other_classes_and_an_empty_window() -> None:
    run = PriorityRun("kaist-nlp", "o1", OPPORTUNISTIC, 8, at(0), None)
    assert priority_use(a_tree(), URGENT, [run], [], at(0), at(4)) == {}
    late = a_run("u1", "kaist-nlp", 8, start=5, end=None)
    assert priority_use(a_tree(), URGENT, [late], [], at(0), at(4)) == {}
    assert PriorityUse(0, 0.0, Credits.zero()) == NO_PRIORITY_USE
