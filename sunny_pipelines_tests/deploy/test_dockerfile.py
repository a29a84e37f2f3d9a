"""deploy/Dockerfile, read as Docker would (no daemon needed): the base, the pinned install,
the non-root user, the gRPC server as the default command, and COPY sources that exist in the
build context (the repository root, filtered by .dockerignore)."""

import fnmatch
import importlib.util
import json
import tomllib
from importlib import metadata

from packaging.requirements import Requirement

from sunny_pipelines_tests.deploy.deploy_files import DEPLOY, ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            found.append((word.upper(), rest.strip()))
            pending = ""
    return found


def _in_build_context(path: str) -> bool:
    """Whether .dockerignore (last matching pattern wins; `!` re-includes) keeps ``path``."""
    kept = True
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or pattern == "**":
            kept = negate
    return kept


def test_base_user_and_default_command():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    (user,) = [args for word, args in steps if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    (cmd,) = [args for word, args in steps if word == "CMD"]
    assert json.loads(cmd) == [
        "dagster", "api", "grpc", "-m", "sunny_pipelines.definitions", "-h", "0.0.0.0", "-p", "4000",
    ]  # fmt: skip
    # The Helm chart sets the container's args to its own `dagster api grpc ...`: an ENTRYPOINT
    # would be prefixed to them.
    assert "ENTRYPOINT" not in {word for word, _ in steps}
    assert importlib.util.find_spec("sunny_pipelines.definitions") is not None


def test_every_copy_source_exists_in_the_build_context():
    copies = [args.split() for word, args in instructions() if word == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
            for file in files[:50]:
                relative = str(file.relative_to(ROOT))
                assert _in_build_context(relative), f"{relative} is excluded by .dockerignore"
    assert not _in_build_context(".venv/bin/python")
    assert not _in_build_context("sunny_pipelines_tests/conftest.py")


def test_the_image_installs_the_pins_then_the_package_with_its_k8s_extra():
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "pip install -r /opt/sunny/constraints.txt" in runs
    assert '--no-deps ".[k8s]"' in runs and "pip check" in runs


def _load_make_constraints():
    spec = importlib.util.spec_from_file_location("make_constraints", DEPLOY / "make_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins() -> dict[str, str]:
    lines = (DEPLOY / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name: version for name, version in pairs}


def test_constraints_pin_every_dependency_within_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    make = _load_make_constraints()
    for line in project["dependencies"] + project["optional-dependencies"]["k8s"]:
        requirement = Requirement(line)
        name = make.canonical(requirement.name)
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {line!r}"


def test_constraints_are_what_the_tests_run_against():
    make = _load_make_constraints()
    expected = make.closure(make.root_requirements())
    expected.pop("sunny-pipelines", None)
    assert _pins() == expected, "deploy/constraints.txt is stale: run deploy/make_constraints.py"
    assert _pins()["dagster"] == metadata.version("dagster")
