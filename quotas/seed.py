"""Seed the demo pool through the books' own operations, once.

Everything goes through ``Books``: funders contribute, the pool appropriates to programs,
projects file allocation requests that are auto-approved, approved, adjusted or left for review.
Seeding a database that already has a pool does nothing and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quotas.access import Role
from quotas.allocations import AllocationRequest
from quotas.demo import GAVEL_SOURCE, THROUGHPUT_SOURCES, DemoPool
from quotas.quantities import Credits
from quotas.service import Books

SEEDER = "admin"


@dataclass
class SeedReport:
    seeded: bool
    period: str
    lines: list[str] = field(default_factory=list)


def seed_demo(books: Books, pool: DemoPool) -> SeedReport:
    if books.tree().accounts:
        return SeedReport(False, pool.period.name, ["the pool already exists; nothing seeded"])
    report = SeedReport(True, pool.period.name)
    say = report.lines.append
    for flavor in pool.flavors:
        books.add_flavor(flavor, THROUGHPUT_SOURCES.get(flavor.name, GAVEL_SOURCE))
    card = books.publish_rate_card(
        pool.rates, pool.period.starts_at, SEEDER, "demo rate card from measured throughput"
    )
    say(
        f"flavors and rate card v{card.version}: "
        + ", ".join(f"{name} {rate} credits/GPU-h" for name, rate in card.rates.items())
    )
    books.add_period(pool.period)
    say(
        f"period {pool.period.name}: "
        f"{pool.period.starts_at:%Y-%m-%d} to {pool.period.ends_at:%Y-%m-%d}"
    )
    for each in pool.funders:
        books.funding.add_funder(each)
    for account in pool.accounts:
        books.add_account(account)
    for program, threshold in pool.auto_approve.items():
        books.accounts.set_auto_approve_threshold(program, Credits.of(threshold))
    for account_name, budget in pool.budgets.items():
        books.set_budget(account_name, pool.period.name, Credits.of(budget))
    tree = books.tree()
    say(
        f"account tree: {len(tree.children(tree.root.name))} programs, "
        f"{sum(1 for a in tree if a.kind == 'organization')} organizations, "
        f"{len(tree.projects())} projects"
    )
    period = pool.period.name
    for funder, amount in pool.contributions:
        books.contribute(funder, period, Credits.of(amount), SEEDER, "demo contribution")
        say(f"contribution: {funder} {amount:,} credits")
    for program, funder, amount in pool.appropriations:
        books.appropriate(program, period, Credits.of(amount), SEEDER, "demo appropriation", funder)
    for user, display_name in pool.users:
        books.people.add_user(user, display_name)
    for user, project, role in pool.members:
        books.add_member(user, project, Role(role), actor="seed")
    for user, program in pool.program_managers:
        books.add_program_manager(user, program, actor="seed")
    for user in pool.auditors:
        books.grant_role(user, Role.AUDITOR, actor="seed")
    say(f"people: {len(pool.users)} users, {len(pool.members)} memberships")
    for project, priority in pool.priority_grants:
        manager = books.people.program_managers(books.program_of(project))[0]
        books.grant_priority(project, priority, books.roles.principal(manager))
        say(f"priority grant: {priority} work in {project}, granted by {manager}")
    for demo in pool.requests:
        request_id = books.request_allocation(
            AllocationRequest(
                demo.project,
                period,
                Credits.of(demo.credits),
                demo.justification,
                tranche_percents=demo.tranche_percents,
            ),
            demo.requested_by,
        )
        state = books.submit_request(request_id, demo.requested_by)
        if demo.review is not None and not state.state.is_awarded:
            manager = books.people.program_managers(books.program_of(demo.project))[0]
            adjusted = Credits.of(demo.adjusted_to) if demo.adjusted_to else None
            state = books.review(
                request_id,
                manager,
                demo.review,
                "demo review: plan and budget are sound",
                adjusted,
            )
        say(
            f"allocation request {request_id}: {demo.project} asks "
            f"{demo.credits:,} credits -> {state.state}"
        )
    for cluster in pool.clusters:
        books.add_cluster(cluster, actor="seed")  # audited: utilisation counts from now
        inventory = ", ".join(
            f"{item.nodes}x{item.gpus_per_node} {item.flavor}" for item in cluster.inventory
        )
        say(f"cluster {cluster.name} ({cluster.backend}, {cluster.site}): {inventory}")
    return report
