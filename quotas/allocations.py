"""Allocation requests: how a project asks for credits, and how a program decides.

One transition table says which moves are allowed::

    draft -> submitted | withdrawn
    submitted -> approved | adjusted | declined | withdrawn | expired
    approved, adjusted -> expired        (the period ended)
    declined, withdrawn, expired         (final)

Tiers, as the national programmes do it: a request up to the program's auto-approval threshold
is approved on submission by the system; a larger one waits for a program manager, who approves
it, adjusts it (awards a different amount) or declines it, always with a reason. An award may be
split into tranches: the first is released at approval, later ones when a program manager
releases them (e.g. after a progress report). Tranche amounts always add up to the award exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from quotas.errors import InvalidInput, InvalidTransition
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

    def submit(self, auto_approve_up_to: Credits | None) -> AllocationRequest:
        """Submit; approve at once if the program's threshold allows it."""
        submitted = self._move(RequestState.SUBMITTED)
        if auto_approve_up_to is not None and self.requested <= auto_approve_up_to:
            return submitted._move(
                RequestState.APPROVED,
                awarded=self.requested,
                reviewer=AUTO_APPROVER,
                reason=f"within the program's auto-approval tier ({auto_approve_up_to} credits)",
            )
        return submitted

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
