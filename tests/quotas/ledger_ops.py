"""Random sequences of ledger operations, for the property tests of the pure ledger and the DB.

A small tree (one pool, two programs, three projects, one budget-capped organization) funded by
two funders; operations are awards, holds, charges, releases, refunds and adjustments with
random amounts, some of them impossible on purpose (they must be refused and change nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.quantities import Credits

PERIOD = "2026-q4"
FUNDERS = ("msit", "gyeonggi")
PROJECTS = ("kaist-nlp", "kaist-protein", "hanbit-robot-policy")
JOBS = ("job-1", "job-2", "job-3")
KAIST_BUDGET = Credits.of(300)


def small_tree() -> AccountTree:
    kind = AccountKind
    return AccountTree.of(
        [
            Account("national", kind.POOL),
            Account("universities", kind.PROGRAM, "national", share=3),
            Account("startups", kind.PROGRAM, "national", share=2),
            Account("kaist", kind.ORGANIZATION, "universities", budget=KAIST_BUDGET),
            Account("hanbit-robotics", kind.ORGANIZATION, "startups"),
            Account("kaist-nlp", kind.PROJECT, "kaist"),
            Account("kaist-protein", kind.PROJECT, "kaist"),
            Account("hanbit-robot-policy", kind.PROJECT, "hanbit-robotics"),
        ]
    )


PROGRAM_OF = {
    "kaist-nlp": "universities",
    "kaist-protein": "universities",
    "hanbit-robot-policy": "startups",
}


@dataclass(frozen=True)
class Op:
    name: str
    project: str
    job: str
    amount: Credits


amounts = st.integers(min_value=1, max_value=400_000).map(Credits)
operations = st.builds(
    Op,
    name=st.sampled_from(["award", "hold", "charge", "release", "refund", "adjust", "adjust_down"]),
    project=st.sampled_from(PROJECTS),
    job=st.sampled_from(JOBS),
    amount=amounts,
)
