"""One log follower for both APIs: it streams each launch's output from its start, so a job
relaunched after preemption loses nothing of its new output."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from jobs.model import Job, JobSpec, JobState, Placed
from scheduler.logs import LogReader, LogsUnavailable

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLACED = Placed("national-daejeon", "h100-80g", 1000, 1, "2026", 170)


class ScriptedReader(LogReader):
    """The follower's logic over a scripted cluster: output per submission id, as it grows."""

    def __init__(self, outputs: dict[str, list[str]]) -> None:
        super().__init__(sessionmaker(), Path("/nonexistent"), {})
        object.__setattr__(self, "outputs", outputs)

    async def read(self, job: Job) -> str:
        script: list[str] = self.outputs[job.submission_id]  # type: ignore[attr-defined]
        if not script:
            raise LogsUnavailable("the cluster is restarting")
        return script.pop(0) if len(script) > 1 else script[0]


def _job(attempt: int, state: JobState = JobState.RUNNING) -> Job:
    spec = JobSpec("kaist-nlp", "seoyeon.lee", "train", "python train.py", 1, 600)
    return replace(Job("gp-1", spec, state, AT), placed=PLACED, attempt=attempt)


def _followed(reader: LogReader, states: list[Job]) -> list[str]:
    async def refresh(job: Job) -> Job:
        return states.pop(0)

    async def collect() -> list[str]:
        return [chunk async for chunk in reader.follow(states.pop(0), refresh, 0)]

    return asyncio.run(collect())


def test_a_relaunched_job_is_followed_from_the_start_of_its_new_launch() -> None:
    reader = ScriptedReader(
        {
            "gp-1": ["step 1\n", "step 1\nstep 2\n"],
            # the new launch wrote more than the old one by the time it is first read
            "gp-1-a2": ["resumed from step 2\n", "resumed from step 2\nstep 3\ndone\n"],
        }
    )
    states = [
        _job(1),
        _job(1),
        _job(2),  # preempted, requeued and admitted again: a new submission id
        _job(2, JobState.SUCCEEDED),
    ]

    chunks = _followed(reader, states)

    assert "".join(chunks) == "step 1\nstep 2\nresumed from step 2\nstep 3\ndone\n"


def test_a_cluster_out_of_reach_for_a_while_loses_nothing() -> None:
    reader = ScriptedReader({"gp-1": ["one\n", "one\ntwo\n"]})
    unreachable = ScriptedReader({"gp-1": []})
    states = [_job(1), _job(1), _job(1, JobState.SUCCEEDED)]

    assert _followed(unreachable, [_job(1, JobState.SUCCEEDED)]) == []
    assert "".join(_followed(reader, states)) == "one\ntwo\n"
