"""What a tenant may ask of a job's Ray runtime_env: a strict allow-list, checked without I/O.

A runtime_env is run by Ray, and Ray's own parsing reads files where a value looks like a path
(a ``pip`` or ``uv`` requirements file, a ``conda`` YAML file) and quotes what it read in its
errors. gpupool therefore never hands a tenant's runtime_env to Ray's parser, on the portal or
anywhere else, and accepts only these fields, each in a form that names no path:

* ``working_dir``: one package the submitter uploaded, ``gcs://<name>`` (Ray's client uploads a
  local directory and names it so); ``py_modules``: a list of such packages. Whose package it
  is, and which bytes it names, is checked against the books by the caller.
* ``pip`` and ``uv``: a list of requirement specifiers (PEP 508: a name, extras, a version,
  markers, and at most an ``https`` URL), or Ray's dictionary form of one with its
  ``*_check`` flag, a ``*_version`` specifier and only the install options Ray's client adds
  itself. No paths, no files, no options (``-r``, ``--index-url``, ...) and no ``$`` (pip
  expands ``${VAR}`` from the installing process's environment).
* ``conda``: an inline environment: ``name``, ``channels`` (names or ``https`` URLs) and
  ``dependencies`` (conda package specs, and at most one ``pip`` list checked as above); never
  a file, a directory, a named environment on the host, a ``prefix`` or ``variables``.
* ``env_vars``: names of letters, digits and ``_`` that do not steer Ray, the accelerators or
  the dynamic loader or interpreter (see ``RESERVED_PREFIXES``), with string values.
* ``excludes`` (patterns Ray's client applies while zipping a local directory) and
  ``_ray_commit`` (the Ray commit Ray's client stamps on a ``pip`` or ``conda`` env), as Ray's
  client sends them.

Everything else (``container``, ``image_uri``, ``config``, plugins, ...) is refused. A refusal
names the field and the rule, never the value submitted: a value may be a probe of the host
(a path), and nothing read from the host is ever quoted because nothing is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from quotas.errors import InvalidRuntimeEnv

PACKAGE_PREFIX: Final = "gcs://"
PACKAGE_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,250}")
"""The name of an uploaded package after ``gcs://``, as the package routes accept it."""

MAX_PY_MODULES: Final = 32
MAX_PACKAGES: Final = 200
MAX_REQUIREMENT_LENGTH: Final = 512
MAX_CHANNELS: Final = 16
MAX_ENV_VARS: Final = 128
MAX_ENV_VALUE_LENGTH: Final = 4096
MAX_EXCLUDES: Final = 200
MAX_EXCLUDE_LENGTH: Final = 256
MAX_VERSION_LENGTH: Final = 64
MAX_OPTIONS: Final = 8

ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
RESERVED_PREFIXES: Final = (
    "RAY_",  # Ray's own settings: its address, auth, runtime-env agent, logging
    "CUDA_",  # which GPUs a process sees (CUDA_VISIBLE_DEVICES) and how CUDA runs
    "NVIDIA_",  # the NVIDIA container runtime's GPU selection
    "ROCR_",  # AMD: ROCR_VISIBLE_DEVICES
    "HIP_",  # AMD: HIP_VISIBLE_DEVICES
    "HSA_",  # AMD's runtime
    "NEURON_RT_",  # AWS Neuron: NEURON_RT_VISIBLE_CORES
    "TPU_",  # TPU_VISIBLE_CHIPS and the TPU runtime
    "HABANA_",  # Gaudi: HABANA_VISIBLE_MODULES
    "ASCEND_",  # Ascend NPUs: ASCEND_RT_VISIBLE_DEVICES
    "LD_",  # the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
    "DYLD_",
    "PYTHON",  # the interpreter Ray's workers run in: PYTHONPATH, PYTHONHOME, PYTHONSTARTUP
)
"""Environment variables a job may not set (compared ignoring case): they choose which
accelerators a process may use, point Ray's processes elsewhere, or change the code every
process loads. A job's own program may still set what it likes for itself."""
RESERVED_SUFFIXES: Final = ("_VISIBLE_DEVICES", "_VISIBLE_CORES", "_VISIBLE_CHIPS")
RESERVED_NAMES: Final = frozenset({"PATH", "ONEAPI_DEVICE_SELECTOR", "GPU_DEVICE_ORDINAL"})

REQUIREMENT_URL_SCHEMES: Final = frozenset({"https", "git+https"})
PIP_OPTIONS: Final = frozenset({"--disable-pip-version-check", "--no-cache-dir"})
"""Ray's own default ``pip install`` options, the only ones a tenant may pass back."""
UV_OPTIONS: Final = frozenset({"--no-cache"})
"""The ``uv pip install`` option Ray's client adds by itself."""

CONDA_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
CONDA_CHANNEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CONDA_SPEC: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:=<>!~,*|+\-\[\]'\" ]{0,255}")
"""A conda match spec such as ``python=3.11``, ``numpy>=1.26`` or ``conda-forge::numpy``; no
``/``: a spec with one is a path or a URL to a package file."""
CONDA_PACKAGE_FILES: Final = (".tar.bz2", ".conda")
RAY_COMMIT: Final = re.compile(r"[A-Za-z0-9{}_]{1,64}")
NAMED_FIELD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def checked_runtime_env(runtime_env: object) -> dict[str, object]:
    """``runtime_env`` if every field in it is one a tenant may set, in an allowed form.

    Returns a plain copy; raises ``InvalidRuntimeEnv`` naming the first field that is not.
    Reads nothing: no file, no environment, no network.
    """
    if not isinstance(runtime_env, Mapping):
        raise InvalidRuntimeEnv("runtime_env must be an object of fields")
    for key in runtime_env:
        if not isinstance(key, str) or key not in FIELDS:
            raise InvalidRuntimeEnv(
                f"runtime_env may not set {_field_name(key)}: gpupool accepts "
                f"{', '.join(sorted(ALLOWED))} only"
            )
    for key, value in runtime_env.items():
        FIELDS[key](value)
    return dict(runtime_env)


def is_uploaded_package(value: object) -> bool:
    """Whether ``value`` names a package uploaded through the Ray Jobs API (``gcs://<name>``)."""
    return (
        isinstance(value, str)
        and value.startswith(PACKAGE_PREFIX)
        and PACKAGE_NAME.fullmatch(value.removeprefix(PACKAGE_PREFIX)) is not None
    )


def is_reserved_env_var(name: str) -> bool:
    """Whether a job may not set the environment variable ``name`` (see ``RESERVED_PREFIXES``)."""
    upper = name.upper()
    return (
        upper in RESERVED_NAMES
        or upper.startswith(RESERVED_PREFIXES)
        or upper.endswith(RESERVED_SUFFIXES)
    )


# -- one check per field ----------------------------------------------------------------------


def _working_dir(value: object) -> None:
    if not is_uploaded_package(value):
        raise InvalidRuntimeEnv(
            "runtime_env working_dir must be a package you uploaded (gcs://<name>, as Ray's "
            "client names a local directory it uploads); paths and other URIs are refused"
        )


def _py_modules(value: object) -> None:
    items = _list(value, "py_modules", MAX_PY_MODULES)
    for index, item in enumerate(items):
        if not is_uploaded_package(item):
            raise InvalidRuntimeEnv(
                f"runtime_env py_modules[{index}] must be a package you uploaded "
                "(gcs://<name>); paths and other URIs are refused"
            )


def _pip(value: object) -> None:
    _installer(value, "pip", "pip_check", "pip_version", "pip_install_options", PIP_OPTIONS)


def _uv(value: object) -> None:
    _installer(value, "uv", "uv_check", "uv_version", "uv_pip_install_options", UV_OPTIONS)


def _installer(
    value: object,
    field: str,
    check: str,
    version: str,
    options: str,
    allowed_options: frozenset[str],
) -> None:
    """``pip`` or ``uv``: a list of requirements, or Ray's dictionary form of one."""
    if not isinstance(value, Mapping):
        _requirements(value, field)
        return
    unknown = set(value) - {"packages", check, version, options}
    if unknown:
        raise InvalidRuntimeEnv(
            f"runtime_env {field} may hold packages, {check}, {version} and {options} only"
        )
    if "packages" not in value:
        raise InvalidRuntimeEnv(f"runtime_env {field} needs packages, a list of requirements")
    _requirements(value["packages"], f"{field}.packages")
    if check in value and not isinstance(value[check], bool):
        raise InvalidRuntimeEnv(f"runtime_env {field}.{check} must be true or false")
    if version in value:
        _version(value[version], f"{field}.{version}")
    if options in value:
        chosen = _list(value[options], f"{field}.{options}", MAX_OPTIONS)
        if not all(isinstance(option, str) and option in allowed_options for option in chosen):
            raise InvalidRuntimeEnv(
                f"runtime_env {field}.{options} may hold only {', '.join(sorted(allowed_options))}"
            )


def _requirements(value: object, where: str) -> None:
    if isinstance(value, str):
        raise InvalidRuntimeEnv(
            f"runtime_env {where} must be a list of requirements such as ['torch>=2.1']; "
            "a requirements file is refused"
        )
    for index, item in enumerate(_list(value, where, MAX_PACKAGES)):
        if not is_requirement(item):
            raise InvalidRuntimeEnv(
                f"runtime_env {where}[{index}] is not a requirement specifier (a name with "
                "optional extras, version and markers, e.g. 'torch>=2.1', or "
                "'name @ https://...'); paths, files, options such as -r or --index-url, and "
                "'$' are refused"
            )


def is_requirement(value: object) -> bool:
    """Whether ``value`` is one PEP 508 requirement that names no path, file or option."""
    if not isinstance(value, str) or not value.strip():
        return False
    if len(value) > MAX_REQUIREMENT_LENGTH or CONTROL.search(value) or "$" in value:
        return False
    if value.lstrip().startswith("-"):
        return False
    try:
        requirement = Requirement(value)
    except InvalidRequirement:
        return False
    if requirement.url is None:
        return True
    url = urlsplit(requirement.url)
    return url.scheme in REQUIREMENT_URL_SCHEMES and bool(url.hostname)


def _version(value: object, where: str) -> None:
    if not is_version_specifier(value):
        raise InvalidRuntimeEnv(f"runtime_env {where} must be a version specifier such as ==24.0")


def is_version_specifier(value: object) -> bool:
    """Whether ``value`` is a version specifier such as ``==24.0`` (Ray appends it to the
    installer's name, ``pip==24.0``)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_VERSION_LENGTH:
        return False
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return False
    return True


def _conda(value: object) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRuntimeEnv(
            "runtime_env conda must be an inline environment (name, channels, dependencies); "
            "an environment file, directory or name on the host is refused"
        )
    unknown = set(value) - {"name", "channels", "dependencies"}
    if unknown:
        raise InvalidRuntimeEnv("runtime_env conda may hold name, channels and dependencies only")
    if "name" in value and not (
        isinstance(value["name"], str) and CONDA_NAME.fullmatch(value["name"])
    ):
        raise InvalidRuntimeEnv(
            "runtime_env conda.name must be 1-64 letters, digits, '.', '_' or '-'"
        )
    channels = _list(value.get("channels", []), "conda.channels", MAX_CHANNELS)
    for index, channel in enumerate(channels):
        if not _is_channel(channel):
            raise InvalidRuntimeEnv(
                f"runtime_env conda.channels[{index}] must be a channel name such as "
                "conda-forge, or an https URL"
            )
    dependencies = _list(value.get("dependencies", []), "conda.dependencies", MAX_PACKAGES)
    pip_lists = 0
    for index, dependency in enumerate(dependencies):
        if isinstance(dependency, Mapping):
            pip_lists += 1
            if set(dependency) != {"pip"} or pip_lists > 1:
                raise InvalidRuntimeEnv(
                    f"runtime_env conda.dependencies[{index}]: besides package specs, "
                    "dependencies may hold one {'pip': [requirements]} only"
                )
            _requirements(dependency["pip"], f"conda.dependencies[{index}].pip")
        elif not _is_conda_spec(dependency):
            raise InvalidRuntimeEnv(
                f"runtime_env conda.dependencies[{index}] is not a conda package spec (e.g. "
                "'python=3.11', 'numpy>=1.26'); paths, URLs and package files are refused"
            )


def _is_channel(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if CONDA_CHANNEL.fullmatch(value):
        return True
    if len(value) > MAX_REQUIREMENT_LENGTH or CONTROL.search(value) or "$" in value:
        return False
    url = urlsplit(value)
    return url.scheme == "https" and bool(url.hostname)


def _is_conda_spec(value: object) -> bool:
    return (
        isinstance(value, str)
        and CONDA_SPEC.fullmatch(value) is not None
        and not value.lower().endswith(CONDA_PACKAGE_FILES)
    )


def _env_vars(value: object) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRuntimeEnv("runtime_env env_vars must be an object of names and values")
    if len(value) > MAX_ENV_VARS:
        raise InvalidRuntimeEnv(f"runtime_env env_vars may set at most {MAX_ENV_VARS} variables")
    for index, (name, setting) in enumerate(value.items()):
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise InvalidRuntimeEnv(
                f"runtime_env env_vars: variable {index + 1} has no valid name (1-128 letters, "
                "digits and '_', not starting with a digit)"
            )
        if is_reserved_env_var(name):
            reserved = [
                *(f"{prefix}*" for prefix in RESERVED_PREFIXES),
                *(f"*{suffix}" for suffix in RESERVED_SUFFIXES),
                *sorted(RESERVED_NAMES),
            ]
            raise InvalidRuntimeEnv(
                f"runtime_env env_vars may not set {name}: it steers Ray, the accelerators or "
                f"the code every process loads (reserved: {', '.join(reserved)})"
            )
        if not isinstance(setting, str) or len(setting) > MAX_ENV_VALUE_LENGTH or "\x00" in setting:
            raise InvalidRuntimeEnv(
                f"runtime_env env_vars {name} must be a string of at most "
                f"{MAX_ENV_VALUE_LENGTH} characters"
            )


def _excludes(value: object) -> None:
    for index, pattern in enumerate(_list(value, "excludes", MAX_EXCLUDES)):
        if (
            not isinstance(pattern, str)
            or not 0 < len(pattern) <= MAX_EXCLUDE_LENGTH
            or CONTROL.search(pattern)
        ):
            raise InvalidRuntimeEnv(
                f"runtime_env excludes[{index}] must be a pattern of 1-{MAX_EXCLUDE_LENGTH} "
                "characters"
            )


def _ray_commit(value: object) -> None:
    if not (isinstance(value, str) and RAY_COMMIT.fullmatch(value)):
        raise InvalidRuntimeEnv("runtime_env _ray_commit must be a Ray commit hash")


def _list(value: object, where: str, limit: int) -> list[object]:
    if not isinstance(value, list):
        raise InvalidRuntimeEnv(f"runtime_env {where} must be a list")
    if len(value) > limit:
        raise InvalidRuntimeEnv(f"runtime_env {where} may hold at most {limit} items")
    return value


def _field_name(key: object) -> str:
    """A refused field, named only when its name is a plain identifier (never a probe)."""
    if isinstance(key, str) and NAMED_FIELD.fullmatch(key):
        return key
    return "a field of that name"


FIELDS: Final[Mapping[str, Callable[[object], None]]] = {
    "working_dir": _working_dir,
    "py_modules": _py_modules,
    "pip": _pip,
    "uv": _uv,
    "conda": _conda,
    "env_vars": _env_vars,
    "excludes": _excludes,
    "_ray_commit": _ray_commit,
}
ALLOWED: Final = frozenset(FIELDS) - {"excludes", "_ray_commit"}
"""The fields named in a refusal (the other two only ride along from Ray's client)."""
