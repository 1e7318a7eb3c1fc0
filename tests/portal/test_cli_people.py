"""``gpupool users``, ``invitations`` and ``roles``: inviting people, signing in with an
invitation, granting and revoking roles; and what ``gpupool serve --demo`` says about signing in
as each demo persona."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from portal import cli
from portal.cli import app
from tests.portal.conftest import Demo
from tests.portal.test_cli import URL, Cli


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def members(demo: Demo, project: str) -> dict[str, str]:
    with demo.books() as books:
        return {member.user: member.role for member in books.people.members_of(project)}


def test_an_invited_person_signs_in_on_the_command_line(gpupool: Cli) -> None:
    printed = gpupool.ok(
        "users", "invite", "nari.oh", "--name", "Oh Na-ri", "--expires", "2d",
        "--project", "kaist-nlp",
    )  # fmt: skip
    invitation = printed.split("--invitation ", 1)[1].split()[0]
    assert "invited nari.oh (new user), researcher of kaist-nlp; works once" in printed
    assert f"sign-in link: {URL}/signin?invite={invitation}" in printed

    listed = gpupool.ok("invitations", "list")
    signed_in = gpupool.ok("login", "--url", URL, "--invitation", invitation, user=None)
    again = gpupool("login", "--url", URL, "--invitation", invitation, user=None)

    assert "nari.oh" in listed
    assert "admin" in listed
    assert f"signed in to {URL} as nari.oh" in signed_in
    assert gpupool.ok("whoami", user=None).startswith("user: nari.oh")
    assert again.exit_code == 1
    assert "this invitation was already used" in again.output
    assert gpupool.ok("invitations", "list") == "no pending invitations\n"


def test_invitations_are_revoked(gpupool: Cli) -> None:
    answer = gpupool.json("users", "invite", "nari.oh")
    revoked = gpupool.ok("invitations", "revoke", str(answer["id"]))
    refused = gpupool("login", "--url", URL, "--invitation", answer["link"], user=None)

    assert revoked == f"invitation {answer['id']} revoked\n"
    assert refused.exit_code == 1
    assert "this invitation was revoked" in refused.output


def test_users_are_listed_as_a_table_or_csv(gpupool: Cli) -> None:
    table = gpupool.ok("users", "list")
    rows = list(csv.reader(io.StringIO(gpupool.ok("users", "list", "--csv"))))

    assert table.splitlines()[0].split() == ["user", "name", "email", "pool", "roles"]
    assert rows[0] == ["user", "name", "email", "pool roles"]
    assert ["yuna.shin", "Shin Yu-na", "", "auditor"] in rows
    assert gpupool("users", "list", user="jiwoo.jung").exit_code == 3


def test_roles_are_granted_and_revoked(gpupool: Cli, demo: Demo) -> None:
    said = [
        gpupool.ok("roles", "grant", "jiwoo.jung", "pi", "--project", "kaist-nlp"),
        gpupool.ok("roles", "grant", "eunji.han", "program_manager", "--program", "universities"),
        gpupool.ok("roles", "grant", "jiwoo.jung", "auditor"),
    ]
    assert members(demo, "kaist-nlp")["jiwoo.jung"] == "pi"
    said += [
        gpupool.ok("roles", "revoke", "jiwoo.jung", "pi", "--project", "kaist-nlp"),
        gpupool.ok("roles", "revoke", "eunji.han", "program_manager", "--program", "universities"),
        gpupool.ok("roles", "revoke", "jiwoo.jung", "auditor"),
        gpupool.ok("roles", "revoke", "jiwoo.jung", "researcher", "--project", "kaist-nlp"),
    ]

    assert said == [
        "jiwoo.jung: pi of kaist-nlp\n",
        "eunji.han: program manager of universities\n",
        "jiwoo.jung: auditor\n",
        "jiwoo.jung: no longer pi of kaist-nlp; still a researcher of it\n",
        "eunji.han: no longer a program manager of universities\n",
        "jiwoo.jung: no longer auditor\n",
        "jiwoo.jung: no longer a member of kaist-nlp\n",
    ]
    assert "jiwoo.jung" not in members(demo, "kaist-nlp")
    wrong = gpupool("roles", "grant", "jiwoo.jung", "pi", "--program", "universities")
    assert wrong.exit_code == 2
    refused = gpupool(
        "roles", "grant", "eunji.han", "program_manager", "--program", "universities",
        user="jaehyun.kim",
    )  # fmt: skip
    assert refused.exit_code == 3
    assert "admins appoint program managers (admin)" in refused.output


def test_serve_demo_prints_a_sign_in_link_per_persona_once(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(cli, "run_service", lambda *args: served.append(args))
    env = {"GPUPOOL_DATABASE_URL": fresh_database_url, "GPUPOOL_DATA_DIR": None}
    args = ["serve", "--demo", "--data-dir", str(tmp_path), "--port", "8123"]

    first = CliRunner().invoke(app, args, env=env)
    second = CliRunner().invoke(app, args, env=env)

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert len(served) == 2
    lines = first.output.splitlines()
    links = lines[lines.index(next(x for x in lines if x.startswith("Sign in as a demo"))) + 1 :]
    personas = [line.split()[-2:] for line in links[:4]]
    assert [user for user, _ in personas] == [
        "jiwoo.jung",
        "seoyeon.lee",
        "jaehyun.kim",
        "yuna.shin",
    ]
    assert all(link.startswith("http://127.0.0.1:8123/signin?invite=gpi_") for _, link in personas)
    assert "gpi_" not in second.output
    assert "Admin token" not in second.output
    assert "`gpupool users invite <user>` makes a new sign-in link" in second.output
