"""Package storage attacks: one tenant filling the pool's storage with uploaded packages.

Issue 8, item 10. ``PUT /api/packages/gcs/<name>`` (Ray's ``--working-dir`` upload) used to keep
whatever a member sent, forever: one tenant could fill the database for everyone. Now each
upload is charged to one project the uploader may submit to (the ``X-Gpupool-Project`` header,
else their only project) and refused whole past the project's quota (413) or the pool's total
(507); and the scheduler removes packages no job needs any more, giving their bytes back.

Every attack runs through the public API of the seeded demo pool (``tests/portal``), here with
small quotas: 64 KiB per project and 100 KiB for the pool. dohyun.choi is in one project
(hanbit-robot-policy), eunji.han in another (postech-materials), hyejin.kang in a third
(seoulvision-doc-ocr), jiwoo.jung in two (kaist-nlp and hanbit-robot-policy).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from portal.app import create_app
from portal.settings import PortalSettings
from quotas.cases.packages import store_package
from quotas.clock import utc_now
from quotas.db.session import make_engine, session_factory, transaction
from quotas.errors import ProjectStorageFull
from quotas.service import Books
from scheduler.package_cleanup import REMOVE_ACTION, remove_unneeded_packages
from tests.portal.conftest import Demo, Template, demo_copy

KIB = 1 << 10
PROJECT_QUOTA = 64 * KIB
POOL_TOTAL = 100 * KIB
PACKAGE = 20 * KIB  # three fit in a project's quota, a fourth does not

FILLER = "dohyun.choi"  # hanbit-robot-policy only
NEIGHBOUR = "eunji.han"  # postech-materials only
THIRD = "hyejin.kang"  # seoulvision-doc-ocr only
TWO_PROJECTS = "jiwoo.jung"  # kaist-nlp and hanbit-robot-policy


@pytest.fixture
def pool(demo_template: Template, tmp_path: Path) -> Iterator[Demo]:
    """The demo portal with small package quotas."""
    with demo_copy(demo_template, tmp_path) as url:
        settings = PortalSettings(
            data_dir=tmp_path,
            database_url=url,
            session_secret="test-secret",
            package_quota_bytes=PROJECT_QUOTA,
            package_pool_bytes=POOL_TOTAL,
        )
        engine = make_engine(url)
        with TestClient(create_app(settings, engine)) as client:
            yield Demo(
                settings, engine, client, demo_template.admin_token, dict(demo_template.tokens)
            )
        engine.dispose()


def a_zip(size: int = PACKAGE) -> bytes:
    """A working_dir zip of about ``size`` bytes (stored, so its size is what it holds)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.bin", os.urandom(size))
    return buffer.getvalue()


def a_name() -> str:
    return f"_ray_pkg_{uuid.uuid4().hex[:16]}.zip"


def upload(
    pool: Demo, user: str, name: str, content: bytes, project: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = pool.headers(user)
    if project is not None:
        headers["X-Gpupool-Project"] = project
    answer = pool.client.put(f"/api/packages/gcs/{name}", content=content, headers=headers)
    body = answer.json() if answer.content else {}
    return answer.status_code, body


def kept(pool: Demo, user: str, name: str) -> bool:
    answer = pool.client.get(f"/api/packages/gcs/{name}", headers=pool.headers(user))
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def usage(pool: Demo, project: str, user: str = "admin") -> dict[str, Any]:
    answer = pool.client.get(f"/api/v1/accounts/{project}/packages", headers=pool.headers(user))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


# -- quotas ----------------------------------------------------------------------------------


def test_one_tenant_cannot_fill_more_than_its_projects_quota(pool: Demo) -> None:
    accepted: list[tuple[str, int]] = []
    refused: list[tuple[str, int, dict[str, Any]]] = []
    for _ in range(6):  # the attack: keep uploading
        name, content = a_name(), a_zip()
        status, body = upload(pool, FILLER, name, content)
        if status == 200:
            accepted.append((name, len(content)))
        else:
            refused.append((name, status, body))

    assert len(accepted) == 3
    assert [status for _, status, _ in refused] == [413] * 3
    detail = refused[0][2]["detail"]
    assert "hanbit-robot-policy" in detail
    assert "quota" in detail
    for name, _, _ in refused:  # nothing of a refused upload was kept
        assert not kept(pool, FILLER, name)
    used = usage(pool, "hanbit-robot-policy", FILLER)
    assert used["used_bytes"] == sum(size for _, size in accepted) <= PROJECT_QUOTA
    assert used["quota_bytes"] == PROJECT_QUOTA
    assert sorted(item["uri"] for item in used["packages"]["items"]) == sorted(
        f"gcs://{name}" for name, _ in accepted
    )
    # uploading one it already has again is not refused: nothing more is kept or charged
    assert upload(pool, FILLER, accepted[0][0], a_zip())[0] == 200
    assert usage(pool, "hanbit-robot-policy")["used_bytes"] == used["used_bytes"]

    # another project's quota is untouched by it
    name = a_name()
    assert upload(pool, NEIGHBOUR, name, a_zip())[0] == 200
    assert kept(pool, NEIGHBOUR, name)
    assert usage(pool, "postech-materials")["packages"]["total"] == 1


def test_tenants_together_cannot_pass_the_pools_total(pool: Demo) -> None:
    for user in (FILLER, FILLER, FILLER, NEIGHBOUR):  # about 80 KiB of the pool's 100 KiB
        assert upload(pool, user, a_name(), a_zip())[0] == 200

    name = a_name()
    status, body = upload(pool, THIRD, name, a_zip())  # within its project's quota, not the pool's

    assert status == 507
    assert body["status"] == 507
    assert "pool" in body["detail"]
    for other in ("hanbit-robot-policy", "postech-materials", FILLER, NEIGHBOUR):
        assert other not in body["detail"]  # says nothing of whose packages fill it
    assert not kept(pool, THIRD, name)
    assert usage(pool, "seoulvision-doc-ocr")["used_bytes"] == 0
    assert upload(pool, THIRD, a_name(), a_zip(KIB))[0] == 200  # what still fits is kept


def test_an_upload_is_charged_only_to_a_project_the_uploader_submits_to(pool: Demo) -> None:
    name = a_name()
    status, body = upload(pool, TWO_PROJECTS, name, a_zip())  # in two projects, names neither
    assert status == 400
    assert "X-Gpupool-Project" in body["detail"]
    for elsewhere, expected in (
        ("postech-materials", 404),  # not theirs: charging it is refused, its name not confirmed
        ("universities", 404),  # a program they cannot see
        ("no-such-project", 404),
    ):
        assert upload(pool, TWO_PROJECTS, name, a_zip(), project=elsewhere)[0] == expected
    assert not kept(pool, TWO_PROJECTS, name)
    assert usage(pool, "postech-materials")["used_bytes"] == 0

    assert upload(pool, TWO_PROJECTS, name, a_zip(), project="kaist-nlp")[0] == 200
    assert usage(pool, "kaist-nlp")["packages"]["total"] == 1
    assert usage(pool, "hanbit-robot-policy")["packages"]["total"] == 0
    # a project's packages are for those who may read the project only
    answer = pool.client.get("/api/v1/accounts/kaist-nlp/packages", headers=pool.headers(NEIGHBOUR))
    assert answer.status_code == 404


def test_two_uploads_at_once_never_both_fit_the_room_for_one(pool: Demo) -> None:
    """Each checks the quota and stores under one lock: the second waits for the first."""
    factory = session_factory(pool.engine)
    with transaction(factory) as session:  # leave room for exactly one more package
        for _ in range(2):
            store_package(
                Books(session),
                FILLER,
                "hanbit-robot-policy",
                f"gcs://{a_name()}",
                a_zip(),
                pool.settings.package_quota,
            )
    first_stored, release = threading.Event(), threading.Event()
    outcomes: list[str] = []

    def race(hold: bool) -> None:
        try:
            with transaction(factory) as session:
                store_package(
                    Books(session),
                    FILLER,
                    "hanbit-robot-policy",
                    f"gcs://{a_name()}",
                    a_zip(),
                    pool.settings.package_quota,
                )
                if hold:
                    first_stored.set()
                    release.wait(timeout=30)
            outcomes.append("stored")
        except ProjectStorageFull:
            outcomes.append("refused")

    first = threading.Thread(target=race, args=(True,))
    first.start()
    assert first_stored.wait(timeout=30)
    second = threading.Thread(target=race, args=(False,))
    second.start()
    second.join(timeout=1)
    assert second.is_alive()  # waiting for the first to commit
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert sorted(outcomes) == ["refused", "stored"]
    assert usage(pool, "hanbit-robot-policy")["used_bytes"] <= PROJECT_QUOTA


# -- cleanup ---------------------------------------------------------------------------------


def submit(pool: Demo, user: str, name: str, project: str) -> str:
    answer = pool.client.post(
        "/api/jobs/",
        json={
            "entrypoint": "python main.py",
            "runtime_env": {"working_dir": f"gcs://{name}"},
            "metadata": {"project": project, "time_limit": "10m"},
        },
        headers=pool.headers(user),
    )
    assert answer.status_code == 200, answer.text
    job_id: str = answer.json()["submission_id"]
    return job_id


def clean_up(pool: Demo, at: datetime) -> list[str]:
    removed = remove_unneeded_packages(
        session_factory(pool.engine), pool.settings.package_retention, clock=lambda: at
    )
    return sorted(package.uri for package in removed)


def test_packages_no_job_needs_are_removed_and_give_their_bytes_back(pool: Demo) -> None:
    retention = pool.settings.package_retention
    finished, waiting, unused = a_name(), a_name(), a_name()
    contents = {name: a_zip() for name in (finished, waiting, unused)}
    for name, content in contents.items():
        assert upload(pool, TWO_PROJECTS, name, content, project="kaist-nlp")[0] == 200
    done = submit(pool, TWO_PROJECTS, finished, "kaist-nlp")
    stopped = pool.client.post(f"/api/jobs/{done}/stop", headers=pool.headers(TWO_PROJECTS))
    assert stopped.json() == {"stopped": True}  # it was queued: it ends at once
    queued = submit(pool, TWO_PROJECTS, waiting, "kaist-nlp")
    now = utc_now()
    full = usage(pool, "kaist-nlp")["used_bytes"]

    assert clean_up(pool, now + retention.grace / 2) == []  # all just uploaded
    # past the grace period: the never-used one goes; the finished job's stays for a while
    assert clean_up(pool, now + retention.grace + timedelta(hours=1)) == [f"gcs://{unused}"]
    assert not kept(pool, TWO_PROJECTS, unused)
    assert kept(pool, TWO_PROJECTS, finished)
    # past the retention after its job ended, the finished job's goes too
    later = now + max(retention.after_last_job, retention.grace) + timedelta(hours=1)
    assert clean_up(pool, later) == [f"gcs://{finished}"]
    assert not kept(pool, TWO_PROJECTS, finished)
    # the queued job's stays as long as the job waits
    assert clean_up(pool, later + timedelta(days=365)) == []
    assert kept(pool, TWO_PROJECTS, waiting)
    job = pool.client.get(f"/api/jobs/{queued}", headers=pool.headers(TWO_PROJECTS)).json()
    digest = hashlib.sha256(contents[waiting]).hexdigest()
    assert job["runtime_env"] == {"working_dir": f"gcs://_ray_pkg_{digest}.zip"}

    left = usage(pool, "kaist-nlp")
    assert [item["uri"] for item in left["packages"]["items"]] == [f"gcs://{waiting}"]
    assert left["used_bytes"] == len(contents[waiting]) < full  # the rest is back in the quota
    audit = pool.client.get(
        "/api/v1/audit", params={"action": REMOVE_ACTION}, headers=pool.headers()
    ).json()
    assert sorted(entry["target"] for entry in audit["items"]) == sorted(
        f"package/{TWO_PROJECTS}/gcs://{name}" for name in (finished, unused)
    )
    assert all(entry["actor"] == "scheduler" for entry in audit["items"])


def test_a_removed_package_can_be_uploaded_again_and_charged_again(pool: Demo) -> None:
    name = a_name()
    content = a_zip()
    assert upload(pool, FILLER, name, content)[0] == 200
    retention = pool.settings.package_retention
    assert clean_up(pool, utc_now() + retention.grace + timedelta(hours=1)) == [f"gcs://{name}"]
    assert usage(pool, "hanbit-robot-policy")["used_bytes"] == 0

    assert upload(pool, FILLER, name, content)[0] == 200  # Ray's client uploads it again
    assert usage(pool, "hanbit-robot-policy")["used_bytes"] == len(content)
