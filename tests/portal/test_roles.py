"""Every role against every endpoint: allowed (2xx), forbidden (403), or not found (404, so
names outside a person's scope do not leak).

The cast, over the demo pool (``tests/portal/conftest.py``); the target is mostly the project
``kaist-nlp`` (organization ``kaist``, program ``universities``):

====================  ===========  ==========================================================
column                user         why
====================  ===========  ==========================================================
admin                 admin        runs the pool
auditor               auditor.kim  reads everything, changes nothing
pm                    jaehyun.kim  program manager of ``universities`` (kaist-nlp's program)
other_pm              minji.park   program manager of ``startups``: kaist-nlp is not theirs
pi                    seoyeon.lee  pi of kaist-nlp
researcher            jiwoo.jung   researcher in kaist-nlp (and submitter of its jobs here)
outsider              eunji.han    pi of postech-materials: kaist-nlp is not theirs
anonymous             (none)       no token at all
====================  ===========  ==========================================================

Each row runs on a fresh demo pool; the roles run in column order, so a role that may change
something runs after the ones that may not (and each write names something new per role).
A test also checks that the table covers every operation in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from jobs.cases import request_cancel, submit
from jobs.model import JobSpec
from quotas.access import Role, Scope
from quotas.admission import PriorityClass, SiteKind
from quotas.allocations import AllocationRequest
from quotas.cases.invitations import invite
from quotas.clock import utc_now
from quotas.db.repositories import PeopleRepository
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.quantities import Credits
from quotas.tokens import issue
from tests.portal.conftest import Demo, Template

USERS = {
    "admin": "admin",
    "auditor": "auditor.kim",
    "pm": "jaehyun.kim",
    "other_pm": "minji.park",
    "pi": "seoyeon.lee",
    "researcher": "jiwoo.jung",
    "outsider": "eunji.han",
    "anonymous": None,
}
ORDER = list(USERS)


@dataclass
class Ids:
    job: str = ""
    ended_job: str = ""
    draft: int = 0
    submitted: int = 0
    awarded: int = 0
    period: str = ""
    link: int = 0
    spare_token: int = 0
    own_token: int = 0
    invitation: int = 0
    own_invitation: int = 0
    ended: dict[str, str] = field(default_factory=dict)


def setup(demo: Demo) -> Ids:
    ids = Ids()
    with demo.books() as books:
        spec = JobSpec("kaist-nlp", "jiwoo.jung", "train", "python train.py", 2, 3600)
        ids.job = submit(books, spec, 72 * 3600)[0].id
        ended = submit(books, spec, 72 * 3600)[0].id
        request_cancel(books, ended, "jiwoo.jung")
        ids.ended_job = ended
        for role in ORDER:
            finished = submit(books, spec, 72 * 3600)[0].id
            request_cancel(books, finished, "jiwoo.jung")
            ids.ended[role] = finished
        for user in ("dohyun.choi", "hyejin.kang", "sungmin.yoon"):
            books.add_member(user, "kaist-nlp", Role.RESEARCHER)
        for user in ("new.admin", "new.pm", "new.pi", "new.other"):
            PeopleRepository(books.session).add_user(user)
        ids.link = books.link_subject("https://id.example", "s-0", "jiwoo.jung")
        manager = books.roles.principal("jaehyun.kim")
        for project in ("kaist-nlp", "kaist-protein"):  # grants to revoke
            books.grant_priority(project, PriorityClass.URGENT, manager)
        period = ids.period = books.current_period().name
        ask = AllocationRequest("kaist-nlp", period, Credits.of(9_000), "more epochs")
        ids.draft = books.request_allocation(ask, "seoyeon.lee")
        ids.submitted = books.request_allocation(ask, "seoyeon.lee")
        books.submit_request(ids.submitted, "seoyeon.lee")
        split = AllocationRequest(
            "kaist-nlp", period, Credits.of(8_000), "two halves", tranche_percents=(50, 50)
        )
        ids.awarded = books.request_allocation(split, "seoyeon.lee")
        books.submit_request(ids.awarded, "seoyeon.lee")
        books.review(ids.awarded, "jaehyun.kim", "approve", "fine")
        books.add_cluster(  # a burst target whose budgets each role tries to change
            ClusterSpec(
                "cloud-seoul",
                BackendKind.KUBERNETES,
                SiteKind.DOMESTIC_CLOUD,
                (Inventory("h100-80g", 4, 8),),
                address="cloud-seoul-context",
                price_multiplier_milli=1500,
                burst_budgets=(("startups", Credits.of(1_000)),),
            )
        )
        ids.spare_token = issue(books.session, "jiwoo.jung", "spare", [Scope.READ], utc_now()).id
        ids.own_token = issue(books.session, "jiwoo.jung", "own", [Scope.READ], utc_now()).id
        PeopleRepository(books.session).add_user("spare.pm")
        books.add_program_manager("spare.pm", "universities")
        admin, pi = books.roles.principal("admin"), books.roles.principal("seoyeon.lee")
        ids.invitation = invite(books, admin, "invited.by.admin").invitation.id
        ids.own_invitation = invite(books, pi, "invited.by.pi", project="kaist-nlp").invitation.id
    return ids


Request = Callable[[Ids, str], tuple[str, str, dict[str, Any]]]


def call(method: str, path: str, targets: dict[str, str] | None = None, **options: Any) -> Request:
    """A request; ``{names}`` in its path and body are filled from the setup's ids, the role,
    and ``{target}``: ``targets[role]`` (or ``targets["*"]``), for writes that each role makes
    on something of its own."""

    def build(ids: Ids, role: str) -> tuple[str, str, dict[str, Any]]:
        target = (targets or {}).get(role, (targets or {}).get("*", ""))
        values = {"role": role, **ids.__dict__, "ended": ids.ended[role]}
        values["target"] = target.format(**values)
        filled = {key: _fill(value, values) for key, value in options.items()}
        return method, path.format(**values), filled

    return build


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def row(spec: str) -> dict[str, int]:
    """``"admin=201 auditor=403 ..."`` -> statuses per role; unnamed roles are 401 when
    anonymous."""
    found = {name: int(code) for name, code in (part.split("=") for part in spec.split())}
    found.setdefault("anonymous", 401)
    missing = set(ORDER) - set(found)
    assert not missing, f"row leaves out {missing}"
    return found


ALL_READ = "admin=200 auditor=200 pm=200 other_pm=200 pi=200 researcher=200 outsider=200"
KAIST_READ = "admin=200 auditor=200 pm=200 other_pm=404 pi=200 researcher=200 outsider=404"
POOL_ADMIN_ONLY = "admin={ok} auditor=403 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"

MATRIX: dict[tuple[str, str], tuple[Request, dict[str, int]]] = {
    # health and metrics are public
    ("GET", "/healthz"): (call("GET", "/healthz"), row(ALL_READ + " anonymous=200")),
    ("GET", "/readyz"): (call("GET", "/readyz"), row(ALL_READ + " anonymous=200")),
    ("GET", "/metrics"): (call("GET", "/metrics"), row(ALL_READ + " anonymous=200")),
    # jobs
    ("POST", "/api/v1/jobs"): (
        call("POST", "/api/v1/jobs", json={"project": "kaist-nlp", "entrypoint": "run"}),
        row("admin=201 auditor=403 pm=403 other_pm=404 pi=201 researcher=201 outsider=404"),
    ),
    ("GET", "/api/v1/jobs"): (call("GET", "/api/v1/jobs"), row(ALL_READ)),
    ("GET", "/api/v1/jobs/{job_id}"): (call("GET", "/api/v1/jobs/{job}"), row(KAIST_READ)),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): (
        call("POST", "/api/v1/jobs/{job}/cancel"),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=200 researcher=200 outsider=404"),
    ),
    ("GET", "/api/v1/jobs/{job_id}/logs"): (
        call("GET", "/api/v1/jobs/{job}/logs"),
        row(KAIST_READ),
    ),
    ("GET", "/api/v1/jobs/{job_id}/logs/stream"): (
        call("GET", "/api/v1/jobs/{ended_job}/logs/stream"),
        row(KAIST_READ),
    ),
    # accounts and members
    ("GET", "/api/v1/accounts"): (call("GET", "/api/v1/accounts"), row(ALL_READ)),
    ("POST", "/api/v1/accounts"): (
        call(
            "POST",
            "/api/v1/accounts",
            json={"name": "kaist-new-{role}", "kind": "project", "parent": "kaist"},
        ),
        # the pi and the researcher may not even read the organization kaist: 404
        row("admin=201 auditor=403 pm=201 other_pm=404 pi=404 researcher=404 outsider=404"),
    ),
    ("GET", "/api/v1/accounts/{name}"): (
        call("GET", "/api/v1/accounts/kaist-nlp"),
        row(KAIST_READ),
    ),
    ("PATCH", "/api/v1/accounts/{name}"): (
        call("PATCH", "/api/v1/accounts/kaist-nlp", json={"share": 3}),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    ("PUT", "/api/v1/accounts/{name}/budget"): (
        call(
            "PUT",
            "/api/v1/accounts/kaist-nlp/budget",
            json={"period": "{period}", "budget": "5000"},
        ),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    ("GET", "/api/v1/accounts/{project}/members"): (
        call("GET", "/api/v1/accounts/kaist-nlp/members"),
        row(KAIST_READ),
    ),
    ("PUT", "/api/v1/accounts/{project}/members/{user}"): (
        call("PUT", "/api/v1/accounts/kaist-nlp/members/dohyun.choi", json={"role": "pi"}),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=200 researcher=403 outsider=404"),
    ),
    ("GET", "/api/v1/accounts/{program}/managers"): (
        call("GET", "/api/v1/accounts/universities/managers"),
        row("admin=200 auditor=200 pm=200 other_pm=404 pi=404 researcher=404 outsider=404"),
    ),
    ("PUT", "/api/v1/accounts/{program}/managers/{user}"): (
        call("PUT", "/api/v1/accounts/universities/managers/new.other"),
        # only an admin appoints; who may not read the program is told it is not there
        row("admin=200 auditor=403 pm=403 other_pm=404 pi=404 researcher=404 outsider=404"),
    ),
    ("DELETE", "/api/v1/accounts/{program}/managers/{user}"): (
        call(
            "DELETE",
            "/api/v1/accounts/universities/managers/{target}",
            targets={"admin": "spare.pm", "*": "jaehyun.kim"},
        ),
        row("admin=204 auditor=403 pm=403 other_pm=404 pi=404 researcher=404 outsider=404"),
    ),
    ("GET", "/api/v1/accounts/{project}/packages"): (
        call("GET", "/api/v1/accounts/kaist-nlp/packages"),
        row(KAIST_READ),
    ),
    ("POST", "/api/v1/accounts/{project}/members"): (
        call(
            "POST",
            "/api/v1/accounts/kaist-nlp/members",
            targets={"admin": "new.admin", "pm": "new.pm", "pi": "new.pi", "*": "new.other"},
            json={"user": "{target}", "role": "researcher"},
        ),
        row("admin=201 auditor=403 pm=201 other_pm=404 pi=201 researcher=403 outsider=404"),
    ),
    ("DELETE", "/api/v1/accounts/{project}/members/{user}"): (
        call(
            "DELETE",
            "/api/v1/accounts/kaist-nlp/members/{target}",
            targets={
                "admin": "dohyun.choi",
                "auditor": "hyejin.kang",
                "pm": "hyejin.kang",
                "pi": "sungmin.yoon",
                "*": "seoyeon.lee",
            },
        ),
        row("admin=204 auditor=403 pm=204 other_pm=404 pi=204 researcher=403 outsider=404"),
    ),
    # priority grants: urgent work needs one; only the program's manager or an admin grants
    ("GET", "/api/v1/accounts/{project}/priority-grants"): (
        call("GET", "/api/v1/accounts/kaist-nlp/priority-grants"),
        row(KAIST_READ),
    ),
    ("PUT", "/api/v1/accounts/{project}/priority-grants/{priority}"): (
        call("PUT", "/api/v1/accounts/kaist-nlp/priority-grants/urgent", json={}),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    ("DELETE", "/api/v1/accounts/{project}/priority-grants/{priority}"): (
        call(
            "DELETE",
            "/api/v1/accounts/{target}/priority-grants/urgent",
            # the admin revokes kaist-protein's grant, leaving kaist-nlp's to the pm
            targets={"admin": "kaist-protein", "*": "kaist-nlp"},
        ),
        row("admin=204 auditor=403 pm=204 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    # allocation requests
    ("GET", "/api/v1/allocation-requests"): (
        call("GET", "/api/v1/allocation-requests"),
        row(ALL_READ),
    ),
    ("POST", "/api/v1/allocation-requests"): (
        call(
            "POST",
            "/api/v1/allocation-requests",
            json={"project": "kaist-nlp", "requested": "100", "justification": "why"},
        ),
        row("admin=201 auditor=403 pm=403 other_pm=404 pi=201 researcher=403 outsider=404"),
    ),
    ("GET", "/api/v1/allocation-requests/{request_id}"): (
        call("GET", "/api/v1/allocation-requests/{draft}"),
        row(KAIST_READ),
    ),
    ("POST", "/api/v1/allocation-requests/{request_id}/submit"): (
        call("POST", "/api/v1/allocation-requests/{draft}/submit"),
        row("admin=200 auditor=403 pm=403 other_pm=404 pi=409 researcher=403 outsider=404"),
    ),
    ("POST", "/api/v1/allocation-requests/{request_id}/review"): (
        call(
            "POST",
            "/api/v1/allocation-requests/{target}/review",
            # the admin reviews the demo's waiting request 7, leaving {submitted} to the pm
            targets={"admin": "7", "*": "{submitted}"},
            json={"decision": "approve", "reason": "good plan"},
        ),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    ("POST", "/api/v1/allocation-requests/{request_id}/withdraw"): (
        call("POST", "/api/v1/allocation-requests/{draft}/withdraw"),
        row("admin=200 auditor=403 pm=403 other_pm=404 pi=409 researcher=403 outsider=404"),
    ),
    ("POST", "/api/v1/allocation-requests/{request_id}/tranches/{seq}/release"): (
        call(
            "POST",
            "/api/v1/allocation-requests/{target}/tranches/2/release",
            # the admin releases the demo's request 1 (hanbit), leaving {awarded} to the pm
            targets={"admin": "1", "*": "{awarded}"},
        ),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=403 researcher=403 outsider=404"),
    ),
    # the catalogue: everyone signed in reads it, only the admin changes it
    ("GET", "/api/v1/flavors"): (call("GET", "/api/v1/flavors"), row(ALL_READ)),
    ("POST", "/api/v1/flavors"): (
        call(
            "POST",
            "/api/v1/flavors",
            json={
                "name": "l40s-48g",
                "memory_gb": 48,
                "relative_throughput": 0.5,
                "ray_resource": "l40s-48g",
                "kubernetes_resource": "nvidia.com/gpu",
            },
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("GET", "/api/v1/rate-cards"): (call("GET", "/api/v1/rate-cards"), row(ALL_READ)),
    ("POST", "/api/v1/rate-cards"): (
        call(
            "POST",
            "/api/v1/rate-cards",
            json={
                "rates": {
                    "h100-80g": "1.1",
                    "a100-80g": "0.8",
                    "v100-32g": "0.25",
                    "rngd-48g": "0.26",
                }
            },
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("GET", "/api/v1/rate-cards/current"): (
        call("GET", "/api/v1/rate-cards/current"),
        row(ALL_READ),
    ),
    ("GET", "/api/v1/clusters"): (call("GET", "/api/v1/clusters"), row(ALL_READ)),
    ("POST", "/api/v1/clusters"): (
        call(
            "POST",
            "/api/v1/clusters",
            targets={"other_pm": "cloud-other-pm", "*": "cloud-{role}"},  # names have no _
            json={
                "name": "{target}",
                "backend": "kubernetes",
                "site": "foreign_cloud",
                "inventory": [{"flavor": "h100-80g", "nodes": 2, "gpus_per_node": 8}],
                "address": "{target}",
                "price_multiplier": "2",
                "burst_budgets": {"universities": "500"},
            },
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("PUT", "/api/v1/clusters/{name}/burst-budgets/{program}"): (
        call(
            "PUT", "/api/v1/clusters/cloud-seoul/burst-budgets/universities", json={"credits": "9"}
        ),
        row(POOL_ADMIN_ONLY.format(ok=200)),
    ),
    ("GET", "/api/v1/periods"): (call("GET", "/api/v1/periods"), row(ALL_READ)),
    ("POST", "/api/v1/periods"): (
        call(
            "POST",
            "/api/v1/periods",
            json={
                "name": "2031-q1",
                "starts_at": "2031-01-01T00:00:00Z",
                "ends_at": "2031-04-01T00:00:00Z",
            },
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("GET", "/api/v1/funders"): (call("GET", "/api/v1/funders"), row(ALL_READ)),
    ("POST", "/api/v1/funders"): (
        call(
            "POST",
            "/api/v1/funders",
            json={"name": "busan", "display_name": "Busan City", "kind": "local_government"},
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("POST", "/api/v1/funders/{name}/contributions"): (
        call(
            "POST",
            "/api/v1/funders/msit/contributions",
            json={"period": "{period}", "credits": "100", "reason": "supplementary budget"},
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("POST", "/api/v1/accounts/{program}/appropriations"): (
        call(
            "POST",
            "/api/v1/accounts/universities/appropriations",
            json={"period": "{period}", "credits": "100", "reason": "spring call"},
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("GET", "/api/v1/funds"): (
        call("GET", "/api/v1/funds"),
        row("admin=200 auditor=200 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"),
    ),
    ("POST", "/api/v1/quote"): (
        call("POST", "/api/v1/quote", json={"gpus": 2, "time_limit": "1h"}),
        row(ALL_READ),
    ),
    # reports: scoped rows for everyone; spend by funder only for admin and auditor
    ("GET", "/api/v1/reports/fairshare"): (
        call("GET", "/api/v1/reports/fairshare"),
        row(ALL_READ),
    ),
    ("GET", "/api/v1/reports/utilisation"): (
        call("GET", "/api/v1/reports/utilisation"),
        row(ALL_READ),
    ),
    ("GET", "/api/v1/reports/spend"): (
        call("GET", "/api/v1/reports/spend", params={"by": "funder"}),
        row("admin=200 auditor=200 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"),
    ),
    ("GET", "/api/v1/reports/wait-times"): (
        call("GET", "/api/v1/reports/wait-times"),
        row(ALL_READ),
    ),
    # the ledger (scoped) and the audit log (admin and auditor)
    ("GET", "/api/v1/ledger"): (
        call("GET", "/api/v1/ledger", params={"account": "kaist-nlp"}),
        row(KAIST_READ),
    ),
    ("GET", "/api/v1/audit"): (
        call("GET", "/api/v1/audit"),
        row("admin=200 auditor=200 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"),
    ),
    # who am I, tokens, users
    ("GET", "/api/v1/me"): (call("GET", "/api/v1/me"), row(ALL_READ)),
    ("GET", "/api/v1/tokens"): (call("GET", "/api/v1/tokens"), row(ALL_READ)),
    ("POST", "/api/v1/tokens"): (
        call("POST", "/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}),
        row(ALL_READ.replace("200", "201")),
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): (
        call(
            "DELETE",
            "/api/v1/tokens/{target}",
            targets={"admin": "{spare_token}", "*": "{own_token}"},
        ),
        # someone else's token is "not found"; the researcher revokes their own
        row("admin=204 auditor=404 pm=404 other_pm=404 pi=404 researcher=204 outsider=404"),
    ),
    ("GET", "/api/v1/users"): (
        call("GET", "/api/v1/users"),
        row("admin=200 auditor=200 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"),
    ),
    ("POST", "/api/v1/users"): (
        call("POST", "/api/v1/users", json={"name": "fresh.{role}", "display_name": "New"}),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("POST", "/api/v1/users/{name}/roles"): (
        call("POST", "/api/v1/users/jiwoo.jung/roles", json={"role": "auditor"}),
        row(POOL_ADMIN_ONLY.format(ok=200)),
    ),
    ("DELETE", "/api/v1/users/{name}/roles/{role}"): (
        call("DELETE", "/api/v1/users/auditor.kim/roles/auditor"),
        row(POOL_ADMIN_ONLY.format(ok=204)),
    ),
    ("POST", "/api/v1/identity-links"): (
        call(
            "POST",
            "/api/v1/identity-links",
            json={
                "issuer": "https://id.example",
                "claim": "sub",
                "value": "s-1",
                "user": "jiwoo.jung",
            },
        ),
        row(POOL_ADMIN_ONLY.format(ok=201)),
    ),
    ("GET", "/api/v1/identity-links"): (
        call("GET", "/api/v1/identity-links"),
        row("admin=200 auditor=200 pm=403 other_pm=403 pi=403 researcher=403 outsider=403"),
    ),
    ("DELETE", "/api/v1/identity-links/{link_id}"): (
        call("DELETE", "/api/v1/identity-links/{link}"),
        row(POOL_ADMIN_ONLY.format(ok=204)),
    ),
    # invitations
    ("GET", "/api/v1/invitations"): (call("GET", "/api/v1/invitations"), row(ALL_READ)),
    ("POST", "/api/v1/invitations"): (
        call(
            "POST", "/api/v1/invitations", json={"user": "invitee.{role}", "project": "kaist-nlp"}
        ),
        # a pi or program manager invites new people into a project whose members they manage
        row("admin=201 auditor=403 pm=201 other_pm=404 pi=201 researcher=403 outsider=404"),
    ),
    ("DELETE", "/api/v1/invitations/{invitation_id}"): (
        call(
            "DELETE",
            "/api/v1/invitations/{target}",
            targets={"pi": "{own_invitation}", "*": "{invitation}"},
        ),
        # someone else's invitation is "not found"; the pi revokes the one they issued
        row("admin=204 auditor=404 pm=404 other_pm=404 pi=204 researcher=404 outsider=404"),
    ),
    ("POST", "/api/v1/invitations/redeem"): (
        call(
            "POST", "/api/v1/invitations/redeem", json={"invitation": "gpi_x", "scopes": ["read"]}
        ),
        # the invitation is the credential: whoever asks, a wrong one is refused alike
        row(ALL_READ.replace("200", "400") + " anonymous=400"),
    ),
    # the Ray Jobs-compatible API
    ("GET", "/api/version"): (call("GET", "/api/version"), row(ALL_READ + " anonymous=200")),
    ("GET", "/api/jobs/"): (call("GET", "/api/jobs/"), row(ALL_READ)),
    ("POST", "/api/jobs/"): (
        call(
            "POST",
            "/api/jobs/",
            json={"entrypoint": "python x.py", "metadata": {"project": "kaist-nlp"}},
        ),
        row("admin=200 auditor=403 pm=403 other_pm=404 pi=200 researcher=200 outsider=404"),
    ),
    ("GET", "/api/jobs/{job_id}"): (call("GET", "/api/jobs/{job}"), row(KAIST_READ)),
    ("POST", "/api/jobs/{job_id}/stop"): (
        call("POST", "/api/jobs/{job}/stop"),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=200 researcher=200 outsider=404"),
    ),
    ("DELETE", "/api/jobs/{job_id}"): (
        call("DELETE", "/api/jobs/{ended}"),
        row("admin=200 auditor=403 pm=200 other_pm=404 pi=200 researcher=200 outsider=404"),
    ),
    ("GET", "/api/jobs/{job_id}/logs"): (call("GET", "/api/jobs/{job}/logs"), row(KAIST_READ)),
    ("GET", "/api/packages/{protocol}/{name}"): (
        call("GET", "/api/packages/gcs/_ray_pkg_0123456789abcdef.zip"),
        row(ALL_READ.replace("200", "404")),
    ),
    ("PUT", "/api/packages/{protocol}/{name}"): (
        call(
            "PUT",
            "/api/packages/gcs/_ray_pkg_{role}.zip",
            content=b"PK\x05\x06" + bytes(18),
            headers={"X-Gpupool-Project": "kaist-nlp"},  # the project charged for it
        ),
        # only those who may submit jobs to kaist-nlp upload what its jobs run
        row("admin=200 auditor=403 pm=403 other_pm=403 pi=200 researcher=200 outsider=404"),
    ),
}


def observe(demo: Demo, request: Request) -> dict[str, int]:
    ids = setup(demo)
    seen: dict[str, int] = {}
    for role in ORDER:
        method, path, options = request(ids, role)
        user = USERS[role]
        headers = {**(demo.headers(user) if user else {}), **options.pop("headers", {})}
        seen[role] = demo.client.request(method, path, headers=headers, **options).status_code
    return seen


@pytest.mark.parametrize("operation", list(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_role_matrix(
    operation: tuple[str, str], demo_template: Template, request: pytest.FixtureRequest
) -> None:
    if demo_template.backend != "sqlite":
        pytest.skip("who may do what does not depend on the database: checked once, on SQLite")
    demo: Demo = request.getfixturevalue("demo")
    call_for, expected = MATRIX[operation]
    assert observe(demo, call_for) == expected


def test_the_matrix_covers_every_operation(demo: Demo) -> None:
    document = demo.client.get("/openapi.json").json()
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }

    assert operations == set(MATRIX)
