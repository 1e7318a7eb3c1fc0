"""Allocation requests: the moves a request may make, review tiers, and tranches of an award.

A project manager or PI sees these rules directly: a small request is approved the moment it is
submitted, a large one waits for a program manager who must give a reason, a final request can
never come back, and an award released in tranches adds up to the award to the milli-credit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotas.allocations import (
    AUTO_APPROVER,
    TRANSITIONS,
    AllocationRequest,
    RequestState,
    Reviewers,
    split,
)
from quotas.errors import ConflictOfInterest, Forbidden, InvalidInput, InvalidTransition
from quotas.quantities import Credits

DRAFT, SUBMITTED, APPROVED, ADJUSTED, DECLINED, WITHDRAWN, EXPIRED = RequestState

PM = "pm-kim"


def a_request(
    credits: str = "1000",
    percents: tuple[int, ...] = (100,),
    justification: str = "fine-tune a Korean LLM",
) -> AllocationRequest:
    return AllocationRequest(
        project="kaist-nlp",
        period="2025-q1",
        requested=Credits.of(credits),
        justification=justification,
        flavors=("h100-80g",),
        tranche_percents=percents,
    )


# How to reach each state through the public operations, starting from a fresh draft.
REACH: dict[RequestState, Callable[[AllocationRequest], AllocationRequest]] = {
    DRAFT: lambda r: r,
    SUBMITTED: lambda r: r.submit(None),
    APPROVED: lambda r: r.submit(None).approve(PM, "strong proposal"),
    ADJUSTED: lambda r: r.submit(None).adjust(PM, "trimmed", Credits.of("500")),
    DECLINED: lambda r: r.submit(None).decline(PM, "out of scope"),
    WITHDRAWN: lambda r: r.withdraw(),
    EXPIRED: lambda r: r.submit(None).approve(PM, "ok").expire(),
}

# The operation that moves a request into each state (no operation moves one back to draft).
MOVE: dict[RequestState, Callable[[AllocationRequest], AllocationRequest]] = {
    SUBMITTED: lambda r: r.submit(None),
    APPROVED: lambda r: r.approve(PM, "strong proposal"),
    ADJUSTED: lambda r: r.adjust(PM, "trimmed", Credits.of("500")),
    DECLINED: lambda r: r.decline(PM, "out of scope"),
    WITHDRAWN: lambda r: r.withdraw(),
    EXPIRED: lambda r: r.expire(),
}

# Written out from the design, independently of the module's table.
ALLOWED: set[tuple[RequestState, RequestState]] = {
    (DRAFT, SUBMITTED),
    (DRAFT, WITHDRAWN),
    (SUBMITTED, APPROVED),
    (SUBMITTED, ADJUSTED),
    (SUBMITTED, DECLINED),
    (SUBMITTED, WITHDRAWN),
    (SUBMITTED, EXPIRED),
    (APPROVED, EXPIRED),
    (ADJUSTED, EXPIRED),
}
FINAL = {DECLINED, WITHDRAWN, EXPIRED}


# --- the transition table ------------------------------------------------------------------------


def test_the_transition_table_is_the_designed_one() -> None:
    assert set(TRANSITIONS) == set(RequestState)
    table = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    assert table == ALLOWED


@pytest.mark.parametrize("state", list(RequestState))
def test_each_state_is_reached_by_its_operation(state: RequestState) -> None:
    assert REACH[state](a_request()).state is state


@pytest.mark.parametrize(
    ("src", "dst"),
    sorted(ALLOWED),
    ids=[f"{src}->{dst}" for src, dst in sorted(ALLOWED)],
)
def test_every_allowed_move_works(src: RequestState, dst: RequestState) -> None:
    moved = MOVE[dst](REACH[src](a_request()))
    assert moved.state is dst


DISALLOWED = sorted(
    (src, dst) for src, dst in itertools.product(RequestState, MOVE) if (src, dst) not in ALLOWED
)


@pytest.mark.parametrize(
    ("src", "dst"), DISALLOWED, ids=[f"{src}->{dst}" for src, dst in DISALLOWED]
)
def test_every_disallowed_move_is_refused(src: RequestState, dst: RequestState) -> None:
    before = REACH[src](a_request())
    with pytest.raises(InvalidTransition, match=f"a {src} request cannot become {dst}"):
        MOVE[dst](before)
    assert before.state is src  # the request is a value: a refused move changes nothing


@pytest.mark.parametrize("state", sorted(FINAL))
def test_a_final_state_has_no_moves(state: RequestState) -> None:
    final = REACH[state](a_request())
    assert final.state.is_final
    for move in MOVE.values():
        with pytest.raises(InvalidTransition):
            move(final)
    with pytest.raises(InvalidTransition):
        final.submit(Credits.of("1000000"))


@pytest.mark.parametrize("state", sorted(set(RequestState) - FINAL))
def test_a_live_state_is_not_final(state: RequestState) -> None:
    assert not state.is_final


def test_only_approved_and_adjusted_requests_carry_an_award() -> None:
    assert {state for state in RequestState if state.is_awarded} == {APPROVED, ADJUSTED}


def test_a_second_submission_is_refused() -> None:
    submitted = a_request().submit(None)
    with pytest.raises(InvalidTransition):
        submitted.submit(Credits.of("1000000"))


# --- submission and the auto-approval tier -------------------------------------------------------


@pytest.mark.parametrize("threshold", ["1000", "1000.001", "5000"])
def test_a_request_within_the_auto_approval_tier_is_approved_on_submission(threshold: str) -> None:
    approved = a_request("1000").submit(Credits.of(threshold))
    assert approved.state is APPROVED
    assert approved.awarded == Credits.of("1000")
    assert approved.reviewer == AUTO_APPROVER
    assert approved.reason is not None
    assert "auto-approval" in approved.reason
    assert approved.tranches() == [Credits.of("1000")]


@pytest.mark.parametrize("threshold", ["999.999", "500", "0"])
def test_a_request_above_the_tier_waits_for_a_program_manager(threshold: str) -> None:
    submitted = a_request("1000").submit(Credits.of(threshold))
    assert submitted.state is SUBMITTED
    assert submitted.awarded is None
    assert submitted.reviewer is None
    assert submitted.tranches() == []


def test_without_a_tier_every_request_waits_for_a_program_manager() -> None:
    submitted = a_request("0.001").submit(None)
    assert submitted.state is SUBMITTED
    assert submitted.awarded is None
    assert submitted.reviewer is None


def test_the_tier_counts_what_the_project_was_auto_approved_before_in_the_period() -> None:
    fits = a_request("1000").submit(Credits.of("2500"), auto_approved=Credits.of("1500"))
    over = a_request("1000").submit(Credits.of("2500"), auto_approved=Credits.of("1500.001"))

    assert (fits.state, fits.awarded) == (APPROVED, Credits.of("1000"))
    assert fits.reason is not None
    assert "auto-approved credits in 2025-q1 are now 2500.0 (1500.0 before" in fits.reason
    assert (over.state, over.awarded, over.reviewer) == (SUBMITTED, None, None)


def test_three_requests_at_the_limit_are_one_automatic_award_not_three() -> None:
    tier = Credits.of("2000")
    auto_approved = Credits.zero()
    states = []
    for _ in range(3):
        submitted = a_request("2000").submit(tier, auto_approved)
        states.append(submitted.state)
        if submitted.reviewer == AUTO_APPROVER and submitted.awarded is not None:
            auto_approved += submitted.awarded

    assert states == [APPROVED, SUBMITTED, SUBMITTED]
    assert auto_approved == tier


def test_the_tier_check_says_why_in_words() -> None:
    request = a_request("1000")

    waiting = request.tier_check(Credits.of("2500"), Credits.of("2000"))
    without = request.tier_check(None)

    assert not waiting.approves
    assert waiting.cumulative == Credits.of("3000")
    assert waiting.why == (
        "waiting for review: kaist-nlp's auto-approved credits in 2025-q1 would be 3000.0 "
        "(2000.0 before this request), over the program's auto-approval tier (2500.0 credits)"
    )
    assert not without.approves
    assert without.why == "waiting for review: the program has no auto-approval tier"


def test_submitting_keeps_what_was_asked_for() -> None:
    draft = a_request("1234.5", percents=(30, 70))
    submitted = draft.submit(None)
    assert submitted.project == "kaist-nlp"
    assert submitted.period == "2025-q1"
    assert submitted.requested == Credits.of("1234.5")
    assert submitted.flavors == ("h100-80g",)
    assert submitted.tranche_percents == (30, 70)
    assert draft.state is DRAFT  # the draft value itself is unchanged


# --- review by a program manager -----------------------------------------------------------------


def test_approval_awards_what_was_requested_and_records_the_review() -> None:
    approved = a_request("1000").submit(None).approve(PM, "strong proposal")
    assert approved.state is APPROVED
    assert approved.awarded == Credits.of("1000")
    assert approved.reviewer == PM
    assert approved.reason == "strong proposal"


def test_adjustment_awards_a_different_amount() -> None:
    adjusted = a_request("1000").submit(None).adjust(PM, "budget is tight", Credits.of("600.5"))
    assert adjusted.state is ADJUSTED
    assert adjusted.awarded == Credits.of("600.5")
    assert adjusted.requested == Credits.of("1000")
    assert adjusted.reviewer == PM
    assert adjusted.reason == "budget is tight"


def test_decline_awards_nothing() -> None:
    declined = a_request().submit(None).decline(PM, "out of scope")
    assert declined.state is DECLINED
    assert declined.awarded is None
    assert declined.tranches() == []
    assert declined.reviewer == PM
    assert declined.reason == "out of scope"


def test_an_expired_award_keeps_its_history() -> None:
    expired = a_request("1000").submit(None).adjust(PM, "trimmed", Credits.of("400")).expire()
    assert expired.state is EXPIRED
    assert expired.awarded == Credits.of("400")
    assert expired.reviewer == PM


Review = Callable[[AllocationRequest, str, str], AllocationRequest]
REVIEWS: dict[str, Review] = {
    "approve": lambda r, who, why: r.approve(who, why),
    "adjust": lambda r, who, why: r.adjust(who, why, Credits.of("500")),
    "decline": lambda r, who, why: r.decline(who, why),
}


@pytest.mark.parametrize("review", list(REVIEWS))
@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_a_review_must_give_its_reason(review: str, reason: str) -> None:
    submitted = a_request().submit(None)
    with pytest.raises(InvalidInput, match="reason"):
        REVIEWS[review](submitted, PM, reason)


@pytest.mark.parametrize("review", list(REVIEWS))
@pytest.mark.parametrize("reviewer", ["", "   "])
def test_a_review_must_name_its_reviewer(review: str, reviewer: str) -> None:
    submitted = a_request().submit(None)
    with pytest.raises(InvalidInput, match="reviewer"):
        REVIEWS[review](submitted, reviewer, "a reason")


@pytest.mark.parametrize("awarded", ["0", "-1", "-0.001"])
def test_an_adjusted_award_must_be_positive(awarded: str) -> None:
    submitted = a_request().submit(None)
    with pytest.raises(InvalidInput, match="positive"):
        submitted.adjust(PM, "trimmed", Credits.of(awarded))


# --- who may review: conflicts of interest ------------------------------------------------------


def reviewers(managers: tuple[str, ...] = ("pm-kim", "pm-lee")) -> Reviewers:
    """Request of kaist-nlp by its pi, pi-park; pm-lee also belongs to kaist-nlp."""
    return Reviewers(
        program="universities",
        project="kaist-nlp",
        requested_by="pi-park",
        managers=managers,
        members=("pi-park", "pm-lee", "researcher-cho"),
    )


def test_a_manager_without_a_conflict_reviews_as_program_manager() -> None:
    authority = reviewers().authority("pm-kim", manages=True, admin=False)

    assert (authority.role, authority.why) == (
        "program manager",
        "pm-kim manages program universities",
    )


@pytest.mark.parametrize(
    ("person", "manages", "admin", "why"),
    [
        ("pm-lee", True, False, "pm-lee is a member of kaist-nlp"),
        ("pi-park", False, False, "pi-park made this request"),
        ("pi-park", True, True, "pi-park made this request"),
        ("researcher-cho", False, True, "researcher-cho is a member of kaist-nlp"),
    ],
)
def test_nobody_reviews_a_request_they_made_or_belong_to(
    person: str, manages: bool, admin: bool, why: str
) -> None:
    with pytest.raises(ConflictOfInterest, match=f"conflict of interest: {why}; the review goes"):
        reviewers().authority(person, manages=manages, admin=admin)


def test_a_membership_granted_elsewhere_is_a_conflict_too() -> None:
    with pytest.raises(ConflictOfInterest, match="pm-kim is a member of kaist-nlp"):
        reviewers().authority("pm-kim", manages=True, admin=False, member=True)


def test_a_conflicted_managers_review_goes_to_the_other_managers_or_an_admin() -> None:
    with pytest.raises(ConflictOfInterest) as refused:
        reviewers().authority("pm-lee", manages=True, admin=False)

    assert str(refused.value).endswith(
        "the review goes to a manager of universities (pm-kim) or an admin"
    )
    assert reviewers().free_managers == ["pm-kim"]


def test_when_every_manager_has_a_conflict_the_review_goes_to_an_admin() -> None:
    only_conflicted = reviewers(managers=("pm-lee",))

    authority = only_conflicted.authority("admin", manages=False, admin=True)

    assert only_conflicted.waiting_for() == (
        "an admin (the program's manager (pm-lee) made the request or belongs to kaist-nlp)"
    )
    assert authority.role == "admin"
    assert authority.why == (
        "conflict of interest: the program's manager (pm-lee) made the request or belongs to "
        "kaist-nlp"
    )


def test_an_admin_may_review_even_when_a_manager_could() -> None:
    authority = reviewers().authority("admin", manages=False, admin=True)

    assert (authority.role, authority.why) == ("admin", "an admin reviewed (pm-kim could have too)")


def test_someone_neither_managing_nor_admin_is_refused_for_lack_of_a_role() -> None:
    with pytest.raises(Forbidden, match="auditor does not manage program universities") as refused:
        reviewers().authority("auditor", manages=False, admin=False)

    assert not isinstance(refused.value, ConflictOfInterest)


# --- the request itself --------------------------------------------------------------------------


@pytest.mark.parametrize("credits", ["0", "-5", "-0.001"])
def test_a_request_asks_for_a_positive_amount(credits: str) -> None:
    with pytest.raises(InvalidInput, match="positive amount"):
        a_request(credits)


@pytest.mark.parametrize("justification", ["", "   ", "\n"])
def test_a_request_needs_a_justification(justification: str) -> None:
    with pytest.raises(InvalidInput, match="justification"):
        a_request(justification=justification)


@pytest.mark.parametrize("percents", [(50, 40), (60, 60), (99,), (101,), (50, 25, 24)])
def test_tranches_must_add_up_to_100_percent(percents: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput, match="add up to 100%"):
        a_request(percents=percents)


@pytest.mark.parametrize("percents", [(), (0, 100), (100, 0), (-10, 110), (50, -50, 100)])
def test_tranches_are_positive_percentages(percents: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput, match="positive percentages"):
        a_request(percents=percents)


# --- tranches ------------------------------------------------------------------------------------


def test_half_and_half_of_twelve_thousand_credits() -> None:
    approved = a_request("12000", percents=(50, 50)).submit(None).approve(PM, "ok")
    assert approved.tranches() == [Credits.of("6000"), Credits.of("6000")]


def test_the_last_tranche_takes_the_rounding() -> None:
    assert split(Credits(100), (33, 33, 34)) == [Credits(33), Credits(33), Credits(34)]
    assert split(Credits(1), (50, 50)) == [Credits(0), Credits(1)]
    assert split(Credits(10), (33, 67)) == [Credits(3), Credits(7)]


def test_adjusted_award_is_split_not_the_request() -> None:
    adjusted = (
        a_request("12000", percents=(25, 75)).submit(None).adjust(PM, "trim", Credits.of("1000"))
    )
    assert adjusted.tranches() == [Credits.of("250"), Credits.of("750")]


@st.composite
def percentages(draw: st.DrawFn) -> list[int]:
    """Positive integer percentages adding up to 100."""
    cuts = draw(st.lists(st.integers(min_value=1, max_value=99), unique=True, max_size=20))
    bounds = [0, *sorted(cuts), 100]
    return [high - low for low, high in itertools.pairwise(bounds)]


@given(st.integers(min_value=1, max_value=10**15), percentages())
def test_tranches_add_up_to_the_award_exactly(milli: int, percents: list[int]) -> None:
    parts = split(Credits(milli), percents)
    assert len(parts) == len(percents)
    assert sum(part.milli for part in parts) == milli
    assert all(part.milli >= 0 for part in parts)
    # Every tranche but the last is its share rounded down; the last absorbs the remainder.
    for part, percent in zip(parts[:-1], percents[:-1], strict=True):
        assert part.milli * 100 <= milli * percent < (part.milli + 1) * 100
    assert parts[-1].milli * 100 >= milli * percents[-1]


@given(st.integers(min_value=1, max_value=10**12), percentages())
def test_an_approved_requests_tranches_add_up_to_its_award(milli: int, percents: list[int]) -> None:
    request = AllocationRequest(
        project="kaist-nlp",
        period="2025-q1",
        requested=Credits(milli),
        justification="scale up",
        tranche_percents=tuple(percents),
    )
    approved = request.submit(Credits(milli))
    tranches = approved.tranches()
    assert approved.awarded == Credits(milli)
    assert sum(t.milli for t in tranches) == milli
