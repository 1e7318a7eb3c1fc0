"""The pages' one message catalogue: both languages for every message, the same placeholders
in both, every key a template names exists, and a job's cause in Korean."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jobs.model import Job, JobSpec, JobState
from portal.pages import reasons
from portal.pages.i18n import Language, Words, chosen_language
from portal.pages.messages import MESSAGES
from quotas.causes import Ended, NoCapacity, Outcome, OverBudget, OverShare, TooLarge
from quotas.quantities import Credits

TEMPLATES = Path(reasons.__file__).parent / "templates"
PAGES = Path(reasons.__file__).parent
KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']\s*[,)]""")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
SEOUL = ZoneInfo("Asia/Seoul")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_message_has_both_languages_with_the_same_placeholders(key: str) -> None:
    english, korean = MESSAGES[key]
    assert english.strip()
    assert korean.strip()
    assert placeholders(english) <= placeholders(korean) | placeholders(english)
    assert placeholders(korean) <= placeholders(english) | placeholders(korean)
    # a Korean message fills in no value the English one does not know, and the other way round
    extra = placeholders(korean) - placeholders(english)
    assert not extra or key.startswith("cause."), f"{key}: Korean names {extra}"


def test_every_key_a_page_names_is_in_the_catalogue() -> None:
    named = set()
    for path in [*TEMPLATES.glob("*.html"), *PAGES.glob("*.py")]:
        # a whole key, not a prefix joined to a value ("state." ~ job.state.value)
        named |= set(re.findall(KEY, path.read_text()))
    assert named, "no message keys found: the pattern is stale"
    missing = sorted(named - MESSAGES.keys())
    assert not missing, f"keys named by pages but not in the catalogue: {missing}"


@pytest.mark.parametrize(
    ("cookie", "accept", "chosen"),
    [
        (None, None, Language.EN),
        (None, "ko-KR,ko;q=0.9,en-US;q=0.8", Language.KO),
        (None, "en-US,en;q=0.9,ko;q=0.8", Language.EN),
        (None, "fr-FR,ko;q=0.5", Language.KO),
        (None, "ko;q=0", Language.EN),
        ("en", "ko-KR", Language.EN),
        ("ko", "en", Language.KO),
        ("xx", "ko", Language.KO),
        (None, "ko;q=abc", Language.EN),
    ],
)
def test_the_language_comes_from_the_switch_then_the_browser(
    cookie: str | None, accept: str | None, chosen: Language
) -> None:
    assert chosen_language(cookie, accept) is chosen


def a_job(**fields: object) -> Job:
    spec = JobSpec("kaist-nlp", "jiwoo.jung", "train", "python train.py", 2, 3600)
    job = Job("gp-1", spec, JobState.QUEUED, datetime(2026, 12, 3, tzinfo=UTC))
    cause = fields.get("cause")
    return job.because(cause) if cause is not None else job  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cause", "facts"),
    [
        (
            NoCapacity(
                ("h100-80g",),
                4,
                12,
                over_share=OverShare("project", "kaist-nlp", 61, 40),
                passed_by=2,
            ),
            ["h100-80g", "4", "12", "kaist-nlp", "61%", "40%", "2"],
        ),
        (
            OverBudget(Credits.of(40), Credits.of("12.5"), "project", "kaist-nlp"),
            ["40 크레딧", "12.5 크레딧", "kaist-nlp", "프로젝트"],
        ),
        (TooLarge(64, 8, multi_node=False), ["64", "8"]),
        (Ended(Outcome.FAILED, exit_code=3, refunded=Credits.of(2)), ["실패", "3", "2 크레딧"]),
    ],
)
def test_a_cause_reads_in_korean_with_its_facts(cause: object, facts: list[str]) -> None:
    job = a_job(cause=cause)
    korean = reasons.reason(Words(Language.KO, SEOUL), job)
    assert HANGUL.search(korean), korean
    for fact in facts:
        assert fact in korean, (fact, korean)
    assert reasons.reason(Words(Language.EN, SEOUL), job) == job.reason


def test_a_job_without_a_cause_keeps_its_sentence() -> None:
    job = a_job()
    assert reasons.reason(Words(Language.KO, SEOUL), job) == job.reason


def test_numbers_credits_and_times_follow_the_locale() -> None:
    english, korean = Words(Language.EN, SEOUL), Words(Language.KO, SEOUL)
    assert english.credits(Credits.of("12345.5")) == "12,345.5 credits"
    assert korean.credits(Credits.of("12345.5")) == "12,345.5 크레딧"
    assert english.rate(1000) == "1.0 credits/GPU-h"
    moment = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)
    assert english.when(moment) == "2026-12-03 16:30"  # shown in the pool's time zone
    assert korean.percent(0.125) == "12.5%"
