"""The gpupool CLI: local set-up, signing in, and the exit codes scripts rely on.

The other ``test_cli_*`` modules drive the real CLI against the real app: ``Cli`` injects the
demo portal's ``TestClient`` as the CLI's HTTP client, so no network is involved.
"""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from portal.cli import app
from tests.portal.conftest import Demo

URL = "http://testserver"


class Cli:
    """``gpupool ...`` as a demo user, through the app in-process."""

    def __init__(self, demo: Demo, home: Path) -> None:
        self.demo = demo
        self.home = home
        self.runner = CliRunner()

    def env(self, user: str | None) -> dict[str, str | None]:
        token = None if user is None else self.demo.headers(user)["Authorization"][7:]
        return {
            "GPUPOOL_URL": None if user is None else URL,
            "GPUPOOL_TOKEN": token,
            "GPUPOOL_CONFIG_DIR": str(self.home / "config"),
            "GPUPOOL_DATA_DIR": str(self.home / "data"),
        }

    def __call__(
        self, *args: str, user: str | None = "admin", input: str | None = None, **env: str | None
    ) -> Result:
        return self.runner.invoke(
            app,
            list(args),
            env=self.env(user) | env,
            obj=self.demo.client,
            input=input,
        )

    def ok(self, *args: str, user: str | None = "admin") -> str:
        result = self(*args, user=user)
        assert result.exit_code == 0, result.output
        return result.output

    def json(self, *args: str, user: str | None = "admin") -> Any:
        return json.loads(self.ok(*args, "--json", user=user))


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def test_init_demo_seeds_once_and_reports_what_it_did(
    fresh_database_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"GPUPOOL_DATABASE_URL": fresh_database_url, "GPUPOOL_DATA_DIR": str(tmp_path)}

    first = runner.invoke(app, ["init", "--demo"], env=env)
    second = runner.invoke(app, ["init", "--demo"], env=env)

    assert first.exit_code == 0, first.output
    assert "contribution: msit 200,000 credits" in first.output
    assert "cluster national-daejeon (ray, national): 2x8 h100-80g, 2x8 a100-80g" in first.output
    assert second.exit_code == 0
    assert "already seeded" in second.output


def test_login_checks_the_token_and_keeps_it_for_the_owner_only(gpupool: Cli) -> None:
    token = gpupool.demo.tokens["jiwoo.jung"]

    signed_in = gpupool("login", "--url", URL, user=None, input=f"{token}\n")
    listed = gpupool("jobs", user=None)
    stored = gpupool.home / "config" / "credentials.json"

    assert signed_in.exit_code == 0, signed_in.output
    assert "as jiwoo.jung" in signed_in.output
    assert token not in signed_in.output
    assert json.loads(stored.read_text()) == {"url": URL, "token": token}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert listed.exit_code == 0, listed.output
    assert gpupool.ok("whoami", user=None).startswith("user: jiwoo.jung")


def test_logout_forgets_the_token(gpupool: Cli) -> None:
    gpupool("login", "--url", URL, "--token", gpupool.demo.tokens["jiwoo.jung"], user=None)

    signed_out = gpupool("logout", user=None)
    listed = gpupool("jobs", user=None)

    assert signed_out.exit_code == 0
    assert not (gpupool.home / "config" / "credentials.json").exists()
    assert listed.exit_code == 3
    assert "not signed in: run `gpupool login`" in listed.output


def test_a_wrong_token_is_refused_and_not_kept(gpupool: Cli) -> None:
    result = gpupool("login", "--url", URL, "--token", "gpp_000000000000_wrong", user=None)

    assert result.exit_code == 3
    assert "sign in again with `gpupool login`" in result.output
    assert not (gpupool.home / "config" / "credentials.json").exists()


def test_the_admin_token_of_a_local_portal_is_used_when_nobody_signed_in(gpupool: Cli) -> None:
    result = gpupool("whoami", user=None, GPUPOOL_DATA_DIR=str(gpupool.demo.settings.data_dir))

    assert result.exit_code == 0, result.output
    assert "user: admin" in result.output


def closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
    return port


def test_an_unreachable_portal_exits_4_with_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = {"GPUPOOL_URL": url, "GPUPOOL_TOKEN": "gpp_x", "GPUPOOL_CONFIG_DIR": str(tmp_path)}

    result = CliRunner().invoke(app, ["jobs"], env=env)

    assert result.exit_code == 4
    assert f"cannot reach the portal at {url}: is `gpupool serve` running?" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("quote", "--gpus", "1", "--time-limit", "four hours"), 2, "cannot read duration"),
        (("quota", "set-budget", "kaist", "lots"), 2, "not an amount of credits"),
        (("jobs", "--state", "sleeping"), 2, "sleeping"),
        (("job", "gp-000000000000"), 1, "no job gp-000000000000"),
        (("quota", "--period", "1999-q1"), 1, "1999-q1"),
    ],
)
def test_errors_are_one_clear_line_with_a_scriptable_exit_code(
    gpupool: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    result = gpupool(*args)

    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_init_new_admin_token_replaces_a_lost_one(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"GPUPOOL_DATABASE_URL": None, "GPUPOOL_DATA_DIR": None}
    args = ["init", "--data-dir", str(tmp_path), "--new-admin-token"]
    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    old = first.output.split("Admin token: ", 1)[1].split()[0]
    (tmp_path / "admin.token").unlink()  # lost
    second = runner.invoke(app, args, env=env)
    assert second.exit_code == 0, second.output
    new = second.output.split("Admin token: ", 1)[1].split()[0]
    assert new != old
    assert (tmp_path / "admin.token").read_text().strip() == new
    assert "earlier tokens are revoked" in second.output
