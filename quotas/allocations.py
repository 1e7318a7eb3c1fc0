"""Allocation requests: how a project asks for credits, and how a program decides.

One transition table says which moves are allowed::

    draft -> submitted | withdrawn
    submitted -> approved | adjusted | declined | withdrawn | expired
    approved, adjusted -> expired        (the period ended)
    declined, withdrawn, expired         (final)

Tiers, as the national programmes do it: the program's auto-approval tier caps what the system
approves on its own for one project in one period, counted cumulatively: a request is approved
on submission only while the project's auto-approved credits in the period, this request
included, stay within the tier. Anything else waits for a review: a program manager approves it,
adjusts it (awards a different amount) or declines it, always with a reason. An award may be
split into tranches: the first is released at approval, later ones when a reviewer releases
them (e.g. after a progress report). Tranche amounts always add up to the award exactly.

Nobody reviews a request they made or a request of a project they belong to: such a request goes
to another manager of the program or to an admin (``Reviewers``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from quotas.errors import ConflictOfInterest, Forbidden, InvalidInput, InvalidTransition
from quotas.quantities import Credits

AUTO_APPROVER = "system:auto-approval"


class RequestState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    ADJUSTED = "adjusted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def is_awarded(self) -> bool:
        return self in (RequestState.APPROVED, RequestState.ADJUSTED)


TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.DRAFT: frozenset({RequestState.SUBMITTED, RequestState.WITHDRAWN}),
    RequestState.SUBMITTED: frozenset(
        {
            RequestState.APPROVED,
            RequestState.ADJUSTED,
            RequestState.DECLINED,
            RequestState.WITHDRAWN,
            RequestState.EXPIRED,
        }
    ),
    RequestState.APPROVED: frozenset({RequestState.EXPIRED}),
    RequestState.ADJUSTED: frozenset({RequestState.EXPIRED}),
    RequestState.DECLINED: frozenset(),
    RequestState.WITHDRAWN: frozenset(),
    RequestState.EXPIRED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    project: str
    period: str
    requested: Credits
    justification: str
    flavors: tuple[str, ...] = ()
    tranche_percents: tuple[int, ...] = (100,)
    """How the award is released: e.g. (50, 50) releases half now and half later."""
    state: RequestState = RequestState.DRAFT
    awarded: Credits | None = None
    reviewer: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.requested.milli <= 0:
            raise InvalidInput(f"a request asks for a positive amount, got {self.requested}")
        if not self.justification.strip():
            raise InvalidInput("a request needs a justification")
        if not self.tranche_percents or any(p <= 0 for p in self.tranche_percents):
            raise InvalidInput("tranches are positive percentages")
        if sum(self.tranche_percents) != 100:
            raise InvalidInput(f"tranches must add up to 100%, got {sum(self.tranche_percents)}%")

    def _move(self, to: RequestState, **changes: object) -> AllocationRequest:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"a {self.state} request cannot become {to}")
        return replace(self, state=to, **changes)  # type: ignore[arg-type]

    def submit(
        self, tier: Credits | None, auto_approved: Credits | None = None
    ) -> AllocationRequest:
        """Submit; approve at once if the project's auto-approved credits in the period, this
        request included, stay within the program's ``tier`` (``auto_approved``: before it)."""
        submitted = self._move(RequestState.SUBMITTED)
        check = self.tier_check(tier, auto_approved)
        if check.approves:
            return submitted._move(
                RequestState.APPROVED,
                awarded=self.requested,
                reviewer=AUTO_APPROVER,
                reason=check.why,
            )
        return submitted

    def tier_check(self, tier: Credits | None, auto_approved: Credits | None = None) -> TierCheck:
        """This request against the program's ``tier``, given what was auto-approved before."""
        before = auto_approved if auto_approved is not None else Credits.zero()
        return TierCheck(tier, before, self.requested, self.project, self.period)

    def approve(self, reviewer: str, reason: str) -> AllocationRequest:
        return self._review(RequestState.APPROVED, reviewer, reason, self.requested)

    def adjust(self, reviewer: str, reason: str, awarded: Credits) -> AllocationRequest:
        if awarded.milli <= 0:
            raise InvalidInput("an adjusted award must be positive; decline the request instead")
        return self._review(RequestState.ADJUSTED, reviewer, reason, awarded)

    def decline(self, reviewer: str, reason: str) -> AllocationRequest:
        return self._review(RequestState.DECLINED, reviewer, reason, None)

    def _review(
        self, to: RequestState, reviewer: str, reason: str, awarded: Credits | None
    ) -> AllocationRequest:
        if not reason.strip():
            raise InvalidInput("a review gives its reason")
        if not reviewer.strip():
            raise InvalidInput("a review names its reviewer")
        return self._move(to, reviewer=reviewer, reason=reason, awarded=awarded)

    def withdraw(self) -> AllocationRequest:
        return self._move(RequestState.WITHDRAWN)

    def expire(self) -> AllocationRequest:
        return self._move(RequestState.EXPIRED)

    def tranches(self) -> list[Credits]:
        """The award split by ``tranche_percents``; the last tranche takes the rounding."""
        if self.awarded is None:
            return []
        return split(self.awarded, self.tranche_percents)


def split(amount: Credits, percents: Sequence[int]) -> list[Credits]:
    parts = [Credits(amount.milli * percent // 100) for percent in percents[:-1]]
    return [*parts, Credits(amount.milli - sum(part.milli for part in parts))]


@dataclass(frozen=True, slots=True)
class TierCheck:
    """Whether the system may approve a request on its own: the program's auto-approval tier
    against the project's cumulative auto-approved credits in the period, this request included.
    """

    tier: Credits | None
    """The program's auto-approval tier; ``None``: the program has none."""
    auto_approved: Credits
    """What the system already approved for the project in the period."""
    requested: Credits
    project: str
    period: str

    @property
    def cumulative(self) -> Credits:
        return self.auto_approved + self.requested

    @property
    def approves(self) -> bool:
        return self.tier is not None and self.cumulative <= self.tier

    @property
    def why(self) -> str:
        """The decision in words, for the request and the audit log."""
        if self.tier is None:
            return "waiting for review: the program has no auto-approval tier"
        totals = (
            f"{self.project}'s auto-approved credits in {self.period} would be "
            f"{self.cumulative} ({self.auto_approved} before this request)"
        )
        if self.approves:
            return (
                f"auto-approved within the program's auto-approval tier ({self.tier} credits): "
                + totals.replace("would be", "are now")
            )
        return (
            f"waiting for review: {totals}, over the program's auto-approval tier "
            f"({self.tier} credits)"
        )


@dataclass(frozen=True, slots=True)
class Authority:
    """Why a person may review a request (or release its tranches), for the audit log."""

    role: str
    """``program manager`` or ``admin``."""
    why: str


@dataclass(frozen=True, slots=True)
class Reviewers:
    """Who may review one request: a manager of its program or an admin, but never a person who
    made the request or belongs to its project (a conflict of interest)."""

    program: str
    project: str
    requested_by: str
    managers: Collection[str]
    """The program's managers."""
    members: Collection[str]
    """The project's members, whatever their role."""

    def conflict(self, person: str, member: bool = False) -> str | None:
        """Why ``person`` may not review, or ``None``; ``member``: they belong to the project
        by a grant ``members`` does not list (e.g. an identity-provider group)."""
        if person == self.requested_by:
            return f"{person} made this request"
        if member or person in self.members:
            return f"{person} is a member of {self.project}"
        return None

    @property
    def free_managers(self) -> list[str]:
        """The program's managers without a conflict of interest."""
        return sorted(name for name in self.managers if self.conflict(name) is None)

    def authority(
        self,
        reviewer: str,
        *,
        manages: bool,
        admin: bool,
        member: bool = False,
        reads_program: bool = True,
    ) -> Authority:
        """Why ``reviewer`` may review; refused with a conflict of interest or for lack of a
        role. ``manages``: they manage the program; ``admin``: they run the pool;
        ``reads_program``: they may read the program, so a refusal names its managers."""
        conflict = self.conflict(reviewer, member)
        if conflict is not None:
            raise ConflictOfInterest(
                f"conflict of interest: {conflict}; the review goes to "
                + self.waiting_for(exclude=reviewer)
            )
        if manages:
            return Authority("program manager", f"{reviewer} manages program {self.program}")
        if admin:
            free = self.free_managers
            if free:
                return Authority("admin", f"an admin reviewed ({', '.join(free)} could have too)")
            return Authority("admin", "conflict of interest: " + self._no_free_manager())
        raise Forbidden(
            f"{reviewer} does not manage program {self.program}: " + self.done_by(reads_program)
        )

    def done_by(self, name_managers: bool) -> str:
        """Who reviews in the program, in words; the managers by name when ``name_managers``."""
        if not name_managers:
            return f"reviews in {self.program} are done by its program managers or an admin"
        if not self.managers:
            return f"program {self.program} has no managers, so an admin reviews its requests"
        return (
            f"reviews in {self.program} are done by its program managers: "
            f"{', '.join(sorted(self.managers))} (or an admin)"
        )

    def waiting_for(self, exclude: str | None = None) -> str:
        """Who may review, in words: the free managers of the program or an admin."""
        free = [name for name in self.free_managers if name != exclude]
        if free:
            return f"a manager of {self.program} ({', '.join(free)}) or an admin"
        return "an admin (" + self._no_free_manager() + ")"

    def _no_free_manager(self) -> str:
        if not self.managers:
            return f"program {self.program} has no managers"
        names = ", ".join(sorted(self.managers))
        return (
            f"the program's managers ({names}) made the request or belong to {self.project}"
            if len(self.managers) > 1
            else f"the program's manager ({names}) made the request or belongs to {self.project}"
        )
