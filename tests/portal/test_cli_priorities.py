"""The CLI's priority-grant commands (``gpupool quota grant-priority`` and friends) and the
urgent submission they govern, through the REST API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.portal.conftest import Demo
from tests.portal.test_cli import Cli

MANAGER = "jaehyun.kim"


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def submit_urgent(gpupool: Cli) -> tuple[int, str]:
    result = gpupool(
        "submit",
        "python train.py",
        "--project",
        "kaist-nlp",
        "--priority",
        "urgent",
        user="jiwoo.jung",
    )
    return result.exit_code, result.output


def test_the_manager_grants_lists_and_revokes_urgent_work(gpupool: Cli) -> None:
    assert gpupool.ok("quota", "priority-grants", "kaist-nlp", user="jiwoo.jung").strip() == (
        "kaist-nlp: no priority grants; its work runs as normal or opportunistic"
    )
    refused, said = submit_urgent(gpupool)
    assert refused == 3
    assert "error: urgent work in kaist-nlp needs a priority grant" in said

    granted = gpupool.ok(
        "quota",
        "grant-priority",
        "kaist-nlp",
        "--expires",
        "2099-01-01T00:00:00+09:00",
        user=MANAGER,
    )
    assert granted.strip() == "kaist-nlp: may submit urgent work until 2098-12-31T15:00:00Z"
    listed = gpupool.ok("quota", "priority-grants", "kaist-nlp", user="jiwoo.jung")
    header, line = listed.splitlines()
    assert header.split() == [
        "priority",
        "granted",
        "by",
        "granted",
        "at",
        "expires",
        "in",
        "force",
    ]
    assert line.split()[:2] == ["urgent", MANAGER]
    assert line.split()[-3:] == ["2098-12-31", "15:00:00", "yes"]
    assert [each["priority"] for each in gpupool.json("quota", "priority-grants", "kaist-nlp")] == [
        "urgent"
    ]
    accepted, said = submit_urgent(gpupool)
    assert accepted == 0, said

    revoked = gpupool.ok("quota", "revoke-priority", "kaist-nlp", user=MANAGER)
    assert revoked.strip() == "kaist-nlp: may no longer submit urgent work"
    assert submit_urgent(gpupool)[0] == 3


def test_a_pi_may_not_grant_and_a_time_without_an_offset_is_refused(gpupool: Cli) -> None:
    refused = gpupool("quota", "grant-priority", "kaist-nlp", user="seoyeon.lee")
    assert refused.exit_code == 3
    assert "error: seoyeon.lee may not grant urgent work in kaist-nlp" in refused.output

    naive = gpupool("quota", "grant-priority", "kaist-nlp", "--expires", "2099-01-01", user=MANAGER)
    assert naive.exit_code == 2
    assert "needs an offset" in naive.output
    assert gpupool.json("quota", "priority-grants", "kaist-nlp") == []
