"""A simulation scenario written into real books, for the production scheduler to run."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from quotas.accounts import AccountKind
from quotas.demo import GAVEL_SOURCE
from quotas.funding import Funder, FunderKind, Period
from quotas.quantities import Credits
from quotas.service import Books
from scheduler.simulator.scenario import EPOCH, Scenario

ACTOR = "admin"
FUNDER = "treasury"
PERIOD = Period("2026-sim", EPOCH - timedelta(days=1), EPOCH + timedelta(days=60))


def write_scenario(books: Books, scenario: Scenario) -> None:
    """The scenario's catalogue, rate card, period, tree, credits and clusters, through the
    books' own operations (credits: one contribution, appropriated to the programs, awarded
    to the projects)."""
    for flavor in scenario.flavors.values():
        books.add_flavor(flavor, GAVEL_SOURCE)
    books.publish_rate_card(dict(scenario.rate_card.rates), PERIOD.starts_at, ACTOR)
    books.add_period(PERIOD)
    books.add_funder(Funder(FUNDER, "Simulation treasury", FunderKind.MINISTRY))
    tree = scenario.tree
    pending = [tree.root.name]
    while pending:
        name = pending.pop(0)
        books.add_account(tree[name])
        if tree[name].budget is not None:
            books.set_budget(name, PERIOD.name, tree[name].budget, ACTOR)
        pending.extend(child.name for child in tree.children(name))
    total = sum(credit.milli for credit in scenario.credits.values())
    books.contribute(FUNDER, PERIOD.name, Credits(total), ACTOR, "simulation")
    per_program: Counter[str] = Counter()
    for project, credits in scenario.credits.items():
        per_program[_program(scenario, project)] += credits.milli
    for program, milli in sorted(per_program.items()):
        books.appropriate(program, PERIOD.name, Credits(milli), ACTOR, "simulation")
    for project, credits in sorted(scenario.credits.items()):
        books.award(_program(scenario, project), project, PERIOD.name, credits, ACTOR, "simulation")
    for cluster in scenario.clusters:
        books.add_cluster(cluster)


def _program(scenario: Scenario, project: str) -> str:
    return next(a.name for a in scenario.tree.path(project) if a.kind is AccountKind.PROGRAM)
