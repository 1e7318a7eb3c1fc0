"""Every page, as every persona who may open it, over a pool with a history: jobs that arrived
through the front door and ran, failed, timed out or wait under the real scheduler (the page
benchmark's own history, small), so no page breaks on real ledger entries and job states."""

from __future__ import annotations

import concurrent.futures
import re

import pytest

from bench import pages as bench


def test_every_page_renders_over_a_pool_with_a_history(capsys: pytest.CaptureFixture[str]) -> None:
    # on a thread of its own: while this package's browser is open, Playwright's event loop runs
    # on the main thread, where the scheduler's asyncio.run would refuse to start
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(bench.main, ["--jobs", "300", "--hours", "4", "--repeat", "1"]).result(600)
    printed = capsys.readouterr().out
    history = re.search(r"history: 300 jobs over 4 h \((.*?)\)", printed)
    assert history, printed
    assert "succeeded" in history.group(1)
    assert "queued" in history.group(1)
    measured = re.findall(r"BENCH page_ms path=(\S+) as=(\S+)", printed)
    personas = {persona for _, persona in measured}
    assert personas == set(bench.PERSONAS)
    pages_of = {persona: {path for path, who in measured if who == persona} for persona in personas}
    assert {"/", "/jobs", "/jobs/{job_id}", "/requests", "/tokens"} <= pages_of["researcher"]
    assert {"/programs/{name}", "/reports/fairshare"} <= pages_of["program_manager"]
    assert {"/admin/clusters", "/audit", "/reports/utilisation"} <= pages_of["auditor"]
