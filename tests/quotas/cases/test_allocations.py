"""The allocation-request use cases against every role: the pi drafts, submits and withdraws;
a manager of the program or an admin reviews and releases tranches, never a member of the
project; a request outside a principal's scope is "not found"."""

from __future__ import annotations

import pytest

from quotas.access import Principal, Scope
from quotas.allocations import RequestState
from quotas.cases.allocations import (
    RequestRecord,
    create_request,
    release_tranche,
    request_record,
    review_request,
    submit_request,
    visible_requests,
    withdraw_request,
)
from quotas.errors import ConflictOfInterest, Forbidden, InvalidInput, MissingScope, NotFound
from quotas.quantities import Credits
from quotas.service import Books
from tests.quotas.cases.conftest import READ_KAIST_NLP, ROLES, matrix, narrowed, outcome

ABOVE_THE_TIER = Credits.of(30_000)
"""More than the universities' auto-approval tier: the request waits for a review."""


def draft(books: Books, pi: Principal, tranches: tuple[int, ...] = (100,)) -> RequestRecord:
    return create_request(
        books, pi, "kaist-nlp", ABOVE_THE_TIER, "Scale up", tranche_percents=tranches
    )


def submitted(books: Books, pi: Principal, tranches: tuple[int, ...] = (100,)) -> int:
    request_id = draft(books, pi, tranches).stored.id
    submit_request(books, pi, request_id)
    return request_id


def test_the_pi_or_an_admin_drafts_a_request_for_a_project(
    pool: Books, cast: dict[str, Principal]
) -> None:
    drafted = {
        role: outcome(create_request, pool, cast[role], "kaist-nlp", Credits.of(10), "Why")
        for role in ROLES
    }

    assert drafted == matrix(
        "admin=ok auditor=Forbidden pm=Forbidden other_pm=NoSuchProject "
        "pi=ok researcher=Forbidden outsider=NoSuchProject"
    )
    record = draft(pool, cast["pi"])
    assert record.stored.request.state is RequestState.DRAFT
    assert record.stored.request.period == pool.current_period().name
    assert record.stored.created_by == "seoyeon.lee"


def test_a_draft_needs_manage_and_a_project(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(MissingScope):
        create_request(pool, narrowed(cast["pi"], Scope.READ), "kaist-nlp", Credits.of(1), "x")
    with pytest.raises(Forbidden, match=r"^jiwoo.jung may not request an allocation for kaist-nlp"):
        create_request(pool, cast["researcher"], "kaist-nlp", Credits.of(1), "x")
    with pytest.raises(InvalidInput, match=r"^kaist is an organization, not a project$"):
        create_request(pool, cast["admin"], "kaist", Credits.of(1), "x")
    with pytest.raises(NotFound, match=r"^no project nowhere; projects you may ask for: "):
        create_request(pool, cast["admin"], "nowhere", Credits.of(1), "x")


def test_requests_are_read_only_within_the_principal_s_scope(
    pool: Books, cast: dict[str, Principal]
) -> None:
    request_id = draft(pool, cast["pi"]).stored.id

    read = {role: outcome(request_record, pool, cast[role], request_id) for role in ROLES}

    assert read == READ_KAIST_NLP
    found, total = visible_requests(pool, cast["outsider"])
    assert total == len(found) > 0
    assert {each.request.project for each in found} == {"postech-materials"}
    # only the projects they may see are named: their program's
    with pytest.raises(
        NotFound, match=r"^no project kaist-nlp; your projects: hanbit-robot-policy, seoulvision-"
    ):
        visible_requests(pool, cast["other_pm"], project="kaist-nlp")
    mine, _ = visible_requests(pool, cast["pm"], project="kaist", states=[RequestState.DRAFT])
    assert [each.id for each in mine] == [request_id]


def test_only_the_requester_s_side_submits_and_withdraws(
    pool: Books, cast: dict[str, Principal]
) -> None:
    request_id = draft(pool, cast["pi"]).stored.id

    with pytest.raises(
        Forbidden, match=f"^jaehyun.kim may not submit allocation request {request_id}$"
    ):
        submit_request(pool, cast["pm"], request_id)
    with pytest.raises(NotFound):
        submit_request(pool, cast["other_pm"], request_id)
    with pytest.raises(MissingScope):
        submit_request(pool, narrowed(cast["pi"], Scope.READ), request_id)
    assert submit_request(pool, cast["pi"], request_id).stored.request.state is (
        RequestState.SUBMITTED
    )
    with pytest.raises(Forbidden, match=r"may not withdraw allocation request"):
        withdraw_request(pool, cast["researcher"], request_id)
    withdrawn = withdraw_request(pool, cast["pi"], request_id)
    assert withdrawn.stored.request.state is RequestState.WITHDRAWN


def test_a_manager_of_the_program_or_an_admin_reviews_never_a_member(
    pool: Books, cast: dict[str, Principal]
) -> None:
    request_id = submitted(pool, cast["pi"])
    refusals = ("auditor", "other_pm", "pi", "researcher", "outsider")

    refused = {
        role: outcome(review_request, pool, cast[role], request_id, "approve", "Fine")
        for role in refusals
    }

    assert refused == {
        "auditor": "Forbidden",
        "other_pm": "NotFound",
        "pi": "ConflictOfInterest",
        "researcher": "ConflictOfInterest",
        "outsider": "NotFound",
    }
    with pytest.raises(MissingScope):
        review_request(pool, narrowed(cast["pm"], Scope.READ), request_id, "approve", "Fine")
    reviewed = review_request(pool, cast["pm"], request_id, "adjust", "Less", Credits.of(20_000))
    assert reviewed.stored.request.state is RequestState.ADJUSTED
    assert reviewed.stored.request.reviewer == "jaehyun.kim"
    assert reviewed.tranches[0][1] == Credits.of(20_000)


def test_an_amount_awarded_belongs_to_an_adjustment_only(
    pool: Books, cast: dict[str, Principal]
) -> None:
    request_id = submitted(pool, cast["pi"])

    for decision, awarded in (("approve", Credits.of(1)), ("adjust", None)):
        with pytest.raises(InvalidInput, match=r"^awarded names the amount of an adjustment"):
            review_request(pool, cast["pm"], request_id, decision, "x", awarded)
    assert request_record(pool, cast["pm"], request_id).stored.request.state is (
        RequestState.SUBMITTED
    )


def test_later_tranches_are_released_by_a_reviewer(pool: Books, cast: dict[str, Principal]) -> None:
    request_id = submitted(pool, cast["pi"], tranches=(50, 50))
    review_request(pool, cast["admin"], request_id, "approve", "Fine")

    with pytest.raises(ConflictOfInterest):
        release_tranche(pool, cast["pi"], request_id, 2)
    with pytest.raises(NotFound):
        release_tranche(pool, cast["outsider"], request_id, 2)
    with pytest.raises(MissingScope):
        release_tranche(pool, narrowed(cast["pm"], Scope.READ), request_id, 2)
    released = release_tranche(pool, cast["pm"], request_id, 2)

    assert [when is not None for _, _, when in released.tranches] == [True, True]
