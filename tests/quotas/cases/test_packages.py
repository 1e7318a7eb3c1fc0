"""The package use cases: the project an upload is charged to (one the uploader may submit
to, named or their only one), its quota, and who may see a project's packages."""

from __future__ import annotations

import pytest

from quotas.access import Principal, Scope
from quotas.cases.packages import charged_project, project_packages, sole_project, store_package
from quotas.errors import Forbidden, InvalidInput, NotFound, ProjectStorageFull, Unspecified
from quotas.packages import StorageQuota
from quotas.service import Books
from tests.quotas.cases.conftest import READ_KAIST_NLP, ROLES, matrix, narrowed, outcome

HOW = "name the project"
ROOMY = StorageQuota(project_bytes=1_000, pool_bytes=10_000)


def test_an_upload_is_charged_to_the_project_named_when_the_uploader_may_submit_there(
    pool: Books, cast: dict[str, Principal]
) -> None:
    charged = {role: outcome(charged_project, pool, cast[role], "kaist-nlp", HOW) for role in ROLES}

    assert charged == matrix(
        "admin=ok auditor=Forbidden pm=Forbidden other_pm=NotFound "
        "pi=ok researcher=ok outsider=NotFound"
    )
    assert charged_project(pool, cast["researcher"], "kaist-nlp", HOW) == "kaist-nlp"
    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not upload packages charged to"):
        charged_project(pool, cast["pm"], "kaist-nlp", HOW)
    with pytest.raises(Forbidden):
        charged_project(pool, narrowed(cast["researcher"], Scope.READ), "kaist-nlp", HOW)


def test_only_a_project_is_charged(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(Unspecified, match=r"^kaist is not a project; uploads are charged to a"):
        charged_project(pool, cast["admin"], "kaist", HOW)


def test_without_a_name_the_uploader_s_only_project_is_charged(
    pool: Books, cast: dict[str, Principal]
) -> None:
    assert charged_project(pool, cast["outsider"], None, HOW) == "postech-materials"
    assert sole_project(cast["outsider"], HOW) == "postech-materials"
    with pytest.raises(
        Unspecified, match=r"^name the project; your projects: hanbit-robot-policy, kaist-nlp$"
    ):
        charged_project(pool, cast["researcher"], "", HOW)
    with pytest.raises(Unspecified, match=r"your projects: none$"):
        sole_project(cast["pm"], HOW)


def test_a_package_is_kept_once_within_the_quota_and_shown_to_readers_of_its_project(
    pool: Books, cast: dict[str, Principal]
) -> None:
    assert store_package(pool, "jiwoo.jung", "kaist-nlp", "gcs://a.zip", b"x" * 600, ROOMY)
    assert not store_package(pool, "jiwoo.jung", "kaist-nlp", "gcs://a.zip", b"y" * 600, ROOMY)
    with pytest.raises(ProjectStorageFull):
        store_package(pool, "seoyeon.lee", "kaist-nlp", "gcs://b.zip", b"z" * 600, ROOMY)

    shown = {role: outcome(project_packages, pool, cast[role], "kaist-nlp") for role in ROLES}

    assert shown == READ_KAIST_NLP
    found = project_packages(pool, cast["pi"], "kaist-nlp")
    assert (found.used_bytes, found.total) == (600, 1)
    assert [(package.uri, package.uploaded_by) for package in found.packages] == [
        ("gcs://a.zip", "jiwoo.jung")
    ]
    with pytest.raises(InvalidInput, match=r"^kaist is not a project; only projects keep"):
        project_packages(pool, cast["admin"], "kaist")
    with pytest.raises(NotFound, match=r"^no project nowhere$"):
        project_packages(pool, cast["admin"], "nowhere")
