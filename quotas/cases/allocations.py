"""Use cases of allocation requests: a pi drafts, submits and withdraws; a reviewer decides.

Reads are scoped to the projects a principal may see ("not found" outside them); every action
needs the ``manage`` scope. Drafting, submitting and withdrawing are for the project's pi (or an
admin); who may review a request or release its tranches is ``Books``' rule (its program's
managers or an admin, never someone who made it or belongs to its project).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from quotas.access import Principal, Role, Scope
from quotas.accounts import AccountKind, with_article
from quotas.allocations import AllocationRequest, RequestState
from quotas.cases import require
from quotas.db.repositories import StoredRequest
from quotas.errors import Forbidden, InvalidInput, NoSuchProject, NotFound
from quotas.quantities import Credits
from quotas.service import Books


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A request as stored, with its tranches: (seq, credits, when released or ``None``)."""

    stored: StoredRequest
    tranches: list[tuple[int, Credits, datetime | None]]


def readable_request(books: Books, principal: Principal, request_id: int) -> StoredRequest:
    """The request, or "not found" when its project is not this principal's to see."""
    stored = books.allocations.stored(request_id)
    if not principal.can_read_account(books.tree(), stored.request.project):
        raise NotFound(f"no allocation request {request_id}")
    return stored


def _record(books: Books, request_id: int) -> RequestRecord:
    return RequestRecord(
        books.allocations.stored(request_id), books.allocations.tranches(request_id)
    )


def request_record(books: Books, principal: Principal, request_id: int) -> RequestRecord:
    """One request the principal may see, with its tranches."""
    readable_request(books, principal, request_id)
    return _record(books, request_id)


def visible_requests(
    books: Books,
    principal: Principal,
    *,
    project: str | None = None,
    states: Sequence[RequestState] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[StoredRequest], int]:
    """A page of the requests the principal may see, newest first, and how many match in all;
    ``project`` narrows to that account's subtree (not found unless they may read it)."""
    tree = books.tree()
    projects = principal.readable_projects(tree) if tree.accounts else []
    if project is not None:
        if project not in tree or not principal.can_read_account(tree, project):
            raise NoSuchProject(project, principal.project_names(tree))
        projects = [project, *(node.name for node in tree.descendants(project))]
    return books.allocations.search(projects=projects, states=states, limit=limit, offset=offset)


def requests_to_review(
    books: Books, principal: Principal, *, limit: int = 50, offset: int = 0
) -> tuple[list[StoredRequest], int]:
    """A page of the submitted requests waiting in the programs the principal manages (every
    program for an admin), newest first, and how many wait in all."""
    tree = books.tree()
    if principal.is_admin:
        projects = principal.readable_projects(tree)
    else:
        projects = [
            name
            for name in principal.readable_projects(tree) or []
            if principal.manages_program_of(tree, name)
        ]
    return books.allocations.search(
        projects=projects, states=[RequestState.SUBMITTED], limit=limit, offset=offset
    )


def review_refusal(books: Books, principal: Principal, request_id: int) -> str | None:
    """Why the principal may not review the request or release its tranches, in the words of
    the refusal they would get (saying who may); ``None`` when they may."""
    readable_request(books, principal, request_id)
    try:
        principal.require(Scope.MANAGE)
        books.review_authority(request_id, principal)
    except Forbidden as refusal:
        return str(refusal)
    return None


def requester_refusal(books: Books, principal: Principal, request_id: int) -> str | None:
    """Why the principal may not submit or withdraw the request, saying who may (its project's
    pi or an admin); ``None`` when they may."""
    project = readable_request(books, principal, request_id).request.project
    if principal.can_request_allocation(project):
        return None
    pis = [member.user for member in books.people.members_of(project) if member.role == Role.PI]
    who = f"the pi of {project} ({', '.join(pis)})" if pis else f"the pi of {project}"
    return (
        f"{principal.user} may not submit or withdraw allocation request {request_id}: "
        f"{who} or an admin may"
    )


def create_request(
    books: Books,
    principal: Principal,
    project: str,
    requested: Credits,
    justification: str,
    *,
    period: str | None = None,
    flavors: Sequence[str] = (),
    tranche_percents: Sequence[int] = (100,),
) -> RequestRecord:
    """Draft a request for credits in ``period`` (default: the current one) for a project the
    principal leads (or as an admin)."""
    tree = books.tree()
    if project not in tree or not principal.can_read_account(tree, project):
        yours = [
            each for each in principal.project_names(tree) if principal.can_request_allocation(each)
        ]
        raise NoSuchProject(project, yours, "projects you may ask for")
    principal.require(Scope.MANAGE)
    require(
        principal,
        principal.can_request_allocation(project),
        f"request an allocation for {project}",
    )
    if tree[project].kind is not AccountKind.PROJECT:
        raise InvalidInput(f"{project} is {with_article(tree[project].kind)}, not a project")
    request = AllocationRequest(
        project=project,
        period=period or books.current_period().name,
        requested=requested,
        justification=justification,
        flavors=tuple(flavors),
        tranche_percents=tuple(tranche_percents),
    )
    request_id = books.request_allocation(request, actor=principal.user)
    return _record(books, request_id)


def _check_requester(books: Books, principal: Principal, request_id: int, verb: str) -> None:
    project = readable_request(books, principal, request_id).request.project
    principal.require(Scope.MANAGE)
    require(
        principal,
        principal.can_request_allocation(project),
        f"{verb} allocation request {request_id}",
    )


def submit_request(books: Books, principal: Principal, request_id: int) -> RequestRecord:
    """Submit a draft; within the program's auto-approval tier it is approved at once."""
    _check_requester(books, principal, request_id, "submit")
    books.submit_request(request_id, actor=principal.user)
    return _record(books, request_id)


def withdraw_request(books: Books, principal: Principal, request_id: int) -> RequestRecord:
    """Withdraw a request that is not yet decided."""
    _check_requester(books, principal, request_id, "withdraw")
    books.withdraw_request(request_id, actor=principal.user)
    return _record(books, request_id)


def review_request(
    books: Books,
    principal: Principal,
    request_id: int,
    decision: str,
    reason: str,
    awarded: Credits | None = None,
) -> RequestRecord:
    """Approve, adjust (award ``awarded``, and only then) or decline a submitted request."""
    if (awarded is not None) != (decision == "adjust"):
        raise InvalidInput("awarded names the amount of an adjustment, and only of one")
    readable_request(books, principal, request_id)
    principal.require(Scope.MANAGE)
    books.review(request_id, principal, decision, reason, awarded)
    return _record(books, request_id)


def release_tranche(books: Books, principal: Principal, request_id: int, seq: int) -> RequestRecord:
    """Release tranche ``seq`` of an award to its project: whoever may review the request."""
    readable_request(books, principal, request_id)
    principal.require(Scope.MANAGE)
    books.release_tranche(request_id, seq, actor=principal)
    return _record(books, request_id)
