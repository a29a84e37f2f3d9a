"""Our Kubernetes manifests (deploy/k8s/) load into the `kubernetes` client's models without a
field lost, and say what our code expects: env vars it reads, secrets that exist, probes on
/healthz at the port the process listens on, the receiver's bounds at the proxy."""

import copy
import os
import re
import subprocess
import sys

import pytest

from sunny_pipelines.webhooks.settings import WebhookSettings
from sunny_pipelines_tests.deploy.deploy_files import (
    MODELS,
    ROOT,
    containers,
    dropped_fields,
    env_vars_read,
    helm_values,
    load_model,
    manifests,
    pod_specs,
    secrets_example,
)

# Dagster's own variables that our manifests may set (the chart's names).
DAGSTER_VARS = {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD"}
# Which product code each long-running part runs: its env must be read there.
PART_SOURCES = {
    "sunny-webhooks": ("webhooks", "db"),
    "sunny-frontend-api": ("frontend_api", "db"),
    "sunny-migrations-": ("db",),
    "sunny-pools-": ("pools.py",),
}


def _ids(items):
    return [str(item) for item in items]


@pytest.mark.parametrize("manifest", manifests(), ids=_ids(manifests()))
def test_every_manifest_loads_into_the_client_models_without_losing_a_field(manifest):
    _, dropped = load_model(manifest.data)
    assert dropped == [], f"{manifest}: fields the Kubernetes API does not have: {dropped}"


def test_a_typo_or_a_wrong_type_is_caught():
    deployment = next(m for m in manifests() if m.kind == "Deployment").data
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert load_model(typo)[1] == ["spec.template.spec.containers[0].readinesProbe"]
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(ValueError):
        load_model(wrong_type)
    assert dropped_fields({"a": [1, {"b": 2}]}, {"a": [1, {}]}) == ["a[1].b"]


def test_every_kind_of_ours_has_a_model():
    assert {(m.data["apiVersion"], m.kind) for m in manifests()} <= set(MODELS)


def _env_names(container):
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            names |= set(secrets_example()[source["secretRef"]["name"]])
    return names


def test_env_vars_set_are_ones_the_code_reads():
    read_anywhere = env_vars_read()
    for manifest, container in containers():
        names = _env_names(container)
        unknown = {n for n in names if n not in read_anywhere and n not in DAGSTER_VARS}
        assert not unknown, f"{manifest}: {sorted(unknown)} are read nowhere in sunny_pipelines"
        read_by_part = env_vars_read(*PART_SOURCES[manifest.name])
        stray = {n for n in names if n.startswith("SUNNY_") and n not in read_by_part}
        assert not stray, f"{manifest}: {sorted(stray)} are not read by the code this part runs"


def test_helm_values_env_vars_are_ones_the_code_reads():
    read = env_vars_read()
    (deployment,) = helm_values()["dagster-user-deployments"]["deployments"]
    names = set(deployment["env"])
    for ref in deployment["envSecrets"]:
        names |= set(secrets_example()[ref["name"]])
    assert names, "the code location gets no environment"
    assert names <= read, f"{sorted(names - read)} are read nowhere in sunny_pipelines"


def test_every_secret_referenced_is_in_the_example_with_a_placeholder():
    example = secrets_example()
    for manifest, container in containers():
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in example.get(ref["name"], {}), f"{manifest}: {ref} not in secrets.example"
    values = helm_values()
    for ref in values["dagster-user-deployments"]["deployments"][0]["envSecrets"]:
        assert ref["name"] in example
    assert "postgresql-password" in example[values["global"]["postgresqlSecretName"]]
    for name, data in example.items():
        for key, value in data.items():
            # Placeholders only: never a real credential in the repository.
            assert "change-me" in value or "Y2hhbmdlLW1l" in value, f"{name}.{key} is not a placeholder"


def _port_number(container, port):
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


@pytest.mark.parametrize("name", ["sunny-webhooks", "sunny-frontend-api"])
def test_services_probe_healthz_on_the_port_the_process_listens_on(name):
    (manifest,) = [m for m in manifests() if m.kind == "Deployment" and m.name == name]
    (container,) = manifest.data["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    listens = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    ready = container["readinessProbe"]["httpGet"]
    assert ready["path"] == "/healthz"
    assert _port_number(container, ready["port"]) == listens
    # /healthz fails while the database does: liveness must not restart pods for that.
    assert _port_number(container, container["livenessProbe"]["tcpSocket"]["port"]) == listens
    assert container["resources"]["requests"]
    (service,) = [m for m in manifests() if m.kind == "Service" and m.name == name]
    assert (
        service.data["spec"]["selector"].items()
        <= manifest.data["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = service.data["spec"]["ports"]
    assert _port_number(container, port["targetPort"]) == listens


def test_every_part_runs_a_command_of_the_package_from_the_one_image():
    image = helm_values()["dagster-user-deployments"]["deployments"][0]["image"]
    commands = {}
    for manifest, container in containers():
        assert container["image"] == f"{image['repository']}:{image['tag']}", str(manifest)
        command = container["command"]
        assert command[:2] == ["python", "-m"], str(manifest)
        commands[command[2]] = command[3:]
    for module, args in commands.items():
        # The module's own CLI, as the pod would start it: it exists and knows these arguments.
        shown = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stderr[-1000:]
        for arg in args:
            if arg.startswith("-") or not arg[0].isdigit():
                assert arg.lstrip("-") in shown.stdout, f"{module} --help does not mention {arg}"
    for manifest, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, str(manifest)


def _annotation_seconds(ingress, name):
    return float(ingress["metadata"]["annotations"][f"nginx.ingress.kubernetes.io/{name}"])


def _size_bytes(text):
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", text).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def test_the_proxy_bounds_match_the_receivers():
    (deployment,) = [m for m in manifests() if m.kind == "Deployment" and m.name == "sunny-webhooks"]
    (container,) = deployment.data["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = WebhookSettings.from_env(env)
    (ingress,) = [m.data for m in manifests() if m.kind == "Ingress" and m.name == "sunny-webhooks"]
    # The proxy lets through the bodies the receiver takes, and no larger ones.
    assert _size_bytes(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]) == (
        settings.max_body_bytes
    )
    # It waits for the receiver's slowest answer (pool wait, connect, statement, then 503).
    slowest = settings.db_pool_timeout + settings.db_connect_timeout + settings.db_statement_timeout
    assert _annotation_seconds(ingress, "proxy-read-timeout") > slowest
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "sunny-webhooks"
    # The controller's client bounds are no longer than the receiver's own.
    (controller,) = [m.data for m in manifests() if m.kind == "ConfigMap"]
    assert float(controller["data"]["client-header-timeout"]) <= settings.header_timeout
    assert float(controller["data"]["client-body-timeout"]) <= settings.body_timeout
    _count, size = controller["data"]["large-client-header-buffers"].split()
    assert _size_bytes(size) <= settings.max_header_bytes


def test_the_jobs_run_the_migrations_and_the_pool_limits_against_the_charts_instance():
    jobs = {m.name: m.data for m in manifests() if m.kind == "Job"}
    migrate = jobs["sunny-migrations-"]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"][2:] == ["sunny_pipelines.db", "upgrade"]
    pools = jobs["sunny-pools-"]["spec"]["template"]["spec"]
    (container,) = pools["containers"]
    assert container["command"][2:] == ["sunny_pipelines.pools", "apply"]
    env = {e["name"]: e for e in container["env"]}
    home = env["DAGSTER_HOME"]["value"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == f"{home}/dagster.yaml"
    (volume,) = [v for v in pools["volumes"] if v["name"] == mount["name"]]
    # The Helm release is named `dagster` (deploy/README.md): its instance ConfigMap.
    assert volume["configMap"]["name"] == "dagster-instance"
    password = env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": helm_values()["global"]["postgresqlSecretName"], "key": "postgresql-password"}
