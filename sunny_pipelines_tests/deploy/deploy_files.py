"""Reading deploy/: our manifests as Kubernetes client models, the Helm values, and the
environment variables the product reads (shared by the deploy tests)."""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

import sunny_pipelines

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
HELM = DEPLOY / "helm"
PACKAGE = Path(sunny_pipelines.__file__).parent

# The client model each kind of ours loads into.
MODELS: Mapping[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("batch/v1", "Job"): "V1Job",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def name(self) -> str:
        meta = self.data["metadata"]
        return meta.get("name") or meta["generateName"]

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}#{self.index} ({self.kind} {self.name})"


def manifests() -> list[Manifest]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for index, data in enumerate(yaml.safe_load_all(path.read_text())):
            if data is not None:
                found.append(Manifest(path, index, data))
    return found


def load_model(data: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """The client model of ``data`` and the paths of fields it does not know.

    The client's deserializer silently drops keys its models do not have, so a typo'd field
    ("readinesProbe") would vanish; serializing the model back and comparing shows what was
    dropped. Wrong types (a string where an int belongs) and missing required fields raise.
    """
    model = MODELS[(data["apiVersion"], data["kind"])]
    api = client.ApiClient()
    obj = api._ApiClient__deserialize(data, model)  # the client's own deserializer
    return obj, dropped_fields(data, api.sanitize_for_serialization(obj))


def dropped_fields(original: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(original, Mapping):
        if not isinstance(kept, Mapping):
            return [path or "/"]
        missing = []
        for key, value in original.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                missing.append(where)
            else:
                missing += dropped_fields(value, kept[key], where)
        return missing
    if isinstance(original, list):
        if not isinstance(kept, list) or len(kept) != len(original):
            return [path]
        return [m for i, item in enumerate(original) for m in dropped_fields(item, kept[i], f"{path}[{i}]")]
    return []


def pod_specs() -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for manifest in manifests():
        if manifest.kind in ("Deployment", "Job"):
            yield manifest, manifest.data["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for manifest, spec in pod_specs():
        for container in spec["containers"]:
            yield manifest, container


def secrets_example() -> dict[str, dict[str, str]]:
    """Secret name -> its keys and placeholder values (deploy/k8s/secrets.example.yaml)."""
    docs = yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    return {doc["metadata"]["name"]: doc["stringData"] for doc in docs if doc}


def helm_values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text())


ENV_NAME = re.compile(r"""["'](SUNNY_[A-Z0-9_]+)["']""")


def env_vars_read(*parts: str) -> set[str]:
    """The SUNNY_* names quoted in the product's source under ``parts`` (package-relative
    directories or files; none: the whole package but the sandbox, which production never runs)."""
    if parts:
        paths = [
            p
            for part in parts
            for p in ((PACKAGE / part).rglob("*.py") if (PACKAGE / part).is_dir() else [PACKAGE / part])
        ]
    else:
        paths = [p for p in PACKAGE.rglob("*.py") if "sandbox" not in p.relative_to(PACKAGE).parts]
    return {name for path in paths for name in ENV_NAME.findall(path.read_text())}
