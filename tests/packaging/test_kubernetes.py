"""The Kubernetes manifests of deploy/kubernetes, against the code they run.

Commands against the click commands and gunicorn's parser, environments against
``load_settings`` (with the mounted ConfigMap and a fake Secret), probe and scrape paths against
the Flask app, ports against what gunicorn and the worker bind, the monitors against the job the
shipped alert rules expect. ``kubectl kustomize`` builds them; without kubectl that test skips
(fails with CI=true).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml
from gunicorn.config import Config as GunicornConfig

from receiver.app import create_app
from receiver.bootstrap import bootstrap, load_catalogues, load_slos
from receiver.settings import load_settings
from tests.packaging.helpers import (
    API_VERSIONS,
    EXAMPLE_SECRET,
    GUNICORN_CONF,
    K8S,
    MULTIPROC_ENV,
    RECEIVER_ALERTS,
    WORKLOADS,
    all_resources,
    check_receiver_command,
    configmap_receiver_yaml,
    container_argv,
    container_of,
    documents,
    empty_dir_mounts,
    example_secret,
    final_stage,
    gunicorn_settings,
    localized_env,
    manifest_env,
    manifest_files,
    only,
    pod_spec,
    receiver_context,
    repo_path_of,
    resource,
    workload,
    workloads,
)
from tests.support.api import TOKEN
from tests.support.servers import REPO_ROOT
from tests.support.skips import need

# --- the manifests as a whole ---------------------------------------------------------------

CATALOGUES = ("runbooks_path", "context_path", "slos_path")  # files the image carries


def test_every_manifest_parses_with_a_known_kind_and_no_namespace() -> None:
    assert manifest_files(), "no manifests"
    kinds = []
    for path in manifest_files():
        docs = documents(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            kind = doc.get("kind")
            assert API_VERSIONS.get(kind) == doc.get("apiVersion"), f"{path.name}: {kind}"
            kinds.append(kind)
            if kind != "Kustomization":
                assert doc["metadata"]["name"]
                assert "namespace" not in doc["metadata"], f"{path.name}: namespace-agnostic"
                assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "receiver"
    assert sorted(set(kinds)) == sorted(API_VERSIONS)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    expected = {p.name for p in manifest_files()} - {"kustomization.yaml", EXAMPLE_SECRET}
    assert sorted(kustomization["resources"]) == sorted(expected)
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))
    # the placeholder image name of the manifests is the one kustomize rewrites
    images = {i["name"] for i in kustomization["images"]}
    for obj in workloads():
        for container in pod_spec(obj)["containers"]:
            assert container["image"] in images


def test_kubectl_kustomize_builds_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        need("kubectl", "no kubectl on PATH (it builds kustomizations offline)")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (r["kind"], r["metadata"]["name"]) for r in all_resources()
    )
    for doc in built:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "receiver"
        if doc["kind"] in WORKLOADS:
            image = pod_spec(doc)["containers"][0]["image"]
            assert ":" in image and image != "receiver", "kustomize set the image"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_match_the_pods_they_select() -> None:
    pods = {r["metadata"]["name"]: r["spec"]["template"]["metadata"]["labels"] for r in workloads()}
    for obj in workloads():
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert _selects(selector, pods[obj["metadata"]["name"]])
            others = [n for n in pods if n != obj["metadata"]["name"]]
            assert not any(_selects(selector, pods[n]) for n in others), "selectors overlap"
    service = resource("Service", "receiver-web")
    chosen = [n for n, labels in pods.items() if _selects(service["spec"]["selector"], labels)]
    assert chosen == ["receiver-web"], "the Service sends traffic to the web pods only"
    monitor = resource("ServiceMonitor", "receiver-web")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    # the workers have no Service: a PodMonitor selects their pods, by a named container port
    pod_monitor = resource("PodMonitor", "receiver-worker")
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    assert [n for n, labels in pods.items() if _selects(selector, labels)] == ["receiver-worker"]
    worker_ports = {p["name"] for p in container_of("worker")["ports"]}
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= worker_ports


# --- ports, commands, probes ----------------------------------------------------------------


def test_the_service_targets_the_port_gunicorn_binds(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = resource("Service", "receiver-web")
    container = container_of("web")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        container_port = ports[target] if isinstance(target, str) else target
        assert container_port in ports.values()
    # the port gunicorn binds with the pod's configuration is the container port
    unused = "postgresql://receiver@127.0.0.1:1/receiver"  # gunicorn's config never connects
    for name, value in localized_env(workload("web"), tmp_path, unused).items():
        if name.startswith("RECEIVER_"):
            clean_env.setenv(name, value)
    (bind,) = gunicorn_settings()["bind"]
    assert bind == f"0.0.0.0:{ports['http']}"
    # and its processes log in the pod's configured format
    pod_format = yaml.safe_load(configmap_receiver_yaml())["log_format"]
    assert gunicorn_settings()["logconfig_dict"]["handlers"]["stderr"]["formatter"] == pod_format


def test_the_worker_serves_metrics_on_the_pods_address() -> None:
    """`receiver worker` listens on 127.0.0.1 unless told otherwise: the pods tell it 0.0.0.0, on
    the port the container declares as `metrics` (the PodMonitor's)."""
    container = container_of("worker")
    name, context = receiver_context(container_argv(container)[1:])
    assert name == "worker"
    params = context.params
    assert params["metrics_address"] == "0.0.0.0", "reachable from Prometheus outside the pod"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert params["metrics_port"] == ports["metrics"]
    # the default is loopback: the option must stay in the manifest
    (default,) = [p.default for p in context.command.params if p.name == "metrics_address"]
    assert default == "127.0.0.1"


def check_gunicorn_command(args: list[str]) -> None:
    parsed = GunicornConfig().parser().parse_args(args)
    assert repo_path_of(parsed.config) == GUNICORN_CONF, f"{parsed.config} is not in the image"
    (target,) = parsed.args
    module, _, attribute = target.partition(":")
    source = REPO_ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert attribute in assigned, f"{source.name} defines no {attribute}"


def test_container_commands_are_real_commands() -> None:
    commands = {}
    for obj in workloads():
        for container in pod_spec(obj)["containers"]:
            argv = container_argv(container)
            if argv[0] == "gunicorn":
                check_gunicorn_command(argv[1:])
                commands[obj["metadata"]["name"]] = "gunicorn"
            else:
                assert argv[0] == "receiver", argv
                commands[obj["metadata"]["name"]] = check_receiver_command(argv[1:])
    assert commands == {
        "receiver-web": "gunicorn",
        "receiver-worker": "worker",
        "receiver-migrate": "db upgrade",
    }
    # and the checker itself refuses what does not exist
    with pytest.raises(AssertionError):
        check_receiver_command(["db", "migrate"])
    with pytest.raises(click.BadParameter):
        check_receiver_command(["worker", "--metrics-port", "many"])
    with pytest.raises(click.NoSuchOption):
        check_receiver_command(["worker", "--metrics-host", "0.0.0.0"])
    # the image's default command is one too
    assert check_receiver_command(only(final_stage(), "CMD").exec_form()) == "serve"


def test_probes_and_scrape_paths_are_served(make_settings: Any) -> None:
    app = create_app(container=bootstrap(make_settings()))
    client = app.test_client()
    container = container_of("web")
    port_names = {p["name"] for p in container["ports"]}
    probes = {k: container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    paths = {}
    for kind, probe in probes.items():
        assert probe["httpGet"]["port"] in port_names
        paths[kind] = probe["httpGet"]["path"]
        answer = client.get(paths[kind])
        assert answer.status_code == 200, f"{kind} {paths[kind]}: {answer.status_code}"
    # liveness must not depend on the database (a Postgres outage must not restart every pod)
    assert paths["livenessProbe"] == "/healthz" and paths["readinessProbe"] == "/readyz"
    monitor = resource("ServiceMonitor", "receiver-web")
    for endpoint in monitor["spec"]["endpoints"]:
        answer = client.get(endpoint["path"])
        assert answer.status_code == 200
        assert answer.mimetype == "text/plain"
        assert b"receiver_webhooks_total" in answer.data
        assert b"receiver_outbox_oldest_due_seconds" in answer.data, "the store gauges too"
    app.extensions["receiver"].engine.dispose()
    # the worker's metrics server (prometheus_client's) answers on /metrics: tests/packaging/
    # test_runtime.py starts one with the manifest's arguments
    pod_monitor = resource("PodMonitor", "receiver-worker")
    assert [e["path"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["/metrics"]


def _alert_rule_jobs() -> set[str]:
    """The values of every ``job="..."`` matcher in the shipped receiver alert rules."""
    rules = yaml.safe_load(RECEIVER_ALERTS.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {job for expr in exprs for job in re.findall(r'\bjob="([^"]+)"', expr)}


def test_monitors_scrape_every_process_as_the_shipped_rules_expect() -> None:
    """ReceiverDown, ReceiverTargetsMissing and the dashboard select `job="receiver"`: both
    monitors must produce that job, whatever the Service or PodMonitor is called."""
    (job,) = _alert_rule_jobs()
    endpoints = [
        *resource("ServiceMonitor", "receiver-web")["spec"]["endpoints"],
        *resource("PodMonitor", "receiver-worker")["spec"]["podMetricsEndpoints"],
    ]
    for endpoint in endpoints:
        relabeled = [
            r
            for r in endpoint.get("relabelings", [])
            if r.get("targetLabel") == "job" and r.get("action", "replace").lower() == "replace"
        ]
        assert len(relabeled) == 1, f"{endpoint['port']}: the job label is set"
        (rule,) = relabeled
        assert rule["replacement"] == job and "sourceLabels" not in rule
        assert endpoint["interval"] and endpoint["path"] == "/metrics"


def test_pods_run_non_root_with_a_read_only_root(clean_env: pytest.MonkeyPatch) -> None:
    uid, gid = (int(x) for x in only(final_stage(), "USER").args.split(":"))
    for obj in workloads():
        spec = pod_spec(obj)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (uid, gid)
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "a writable /tmp"
            for mount in mounts.values():
                if "secret" in volumes[mount["name"]]:
                    assert mount["readOnly"] is True
            assert "resources" in container and container["resources"]["limits"]["memory"]
            assert "env" not in container or all("value" not in e or not re.search(
                "TOKEN|PASSWORD|SECRET", e["name"]) for e in container["env"])  # fmt: skip


def test_pods_stop_within_their_grace_period(clean_env: pytest.MonkeyPatch) -> None:
    graceful = gunicorn_settings()["graceful_timeout"]
    spec = pod_spec(workload("web"))
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert graceful + int(pre_stop[1]) < spec["terminationGracePeriodSeconds"]


# --- the web's multiprocess metrics ---------------------------------------------------------


def test_the_web_adds_up_its_processes_metrics_in_a_directory_of_its_own() -> None:
    """PROMETHEUS_MULTIPROC_DIR: set on the web container only, to a writable emptyDir of the
    pod that nothing else shares (gunicorn's master empties it when it starts)."""
    web = workload("web")
    directory = manifest_env(web)[MULTIPROC_ENV]
    mounts = empty_dir_mounts(web)
    assert directory in mounts, f"{MULTIPROC_ENV}={directory} is not an emptyDir mount"
    assert mounts[directory].get("sizeLimit"), "a bounded emptyDir"
    (container,) = pod_spec(web)["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    assert not mount.get("readOnly")
    assert PurePosixPath(directory).is_absolute() and directory != "/tmp"
    # only the web has it: any other receiver process would write into a missing directory
    for component in ("worker", "migrate"):
        assert MULTIPROC_ENV not in manifest_env(workload(component)), component
    for name, data in ((r["metadata"]["name"], r.get("data", {})) for r in all_resources()
                       if r["kind"] == "ConfigMap"):  # fmt: skip
        assert MULTIPROC_ENV not in data, f"ConfigMap {name}: shared by every container"


# --- the manifests' environment against the real settings -----------------------------------


@pytest.mark.parametrize("component", ["web", "worker", "migrate"])
def test_manifest_environment_loads_as_real_settings(
    component: str, tmp_path: Path, pg_url: str
) -> None:
    obj = workload(component)
    env = localized_env(obj, tmp_path, pg_url)
    settings = load_settings(environ=env)  # unknown RECEIVER_* names would be errors here
    assert settings.database_url == pg_url, "the URL with its password comes from the Secret"
    assert [t.get_secret_value() for t in settings.auth.bearer_tokens] == [
        TOKEN,
        "second-token-during-rotation",
    ]
    assert settings.receivers["pagerduty_critical"].routing_key.get_secret_value() == "p" * 32
    assert settings.ui.enabled and settings.ui.secret_key is not None
    assert settings.listen.host == "0.0.0.0"
    assert settings.log_format == "json", "one JSON object per line for the log collector"
    # reconciliation against each peer of the in-cluster Alertmanager pair, and the Watchdog
    urls = settings.alertmanager.urls
    assert len(urls) == 2 and len({u.split("//")[1].split(".")[0] for u in urls}) == 2
    assert settings.watchdog.enabled and settings.watchdog.missing_after_minutes == 10
    # the catalogues it names are the ones the image carries
    for key in CATALOGUES:
        value = getattr(settings, key)
        assert value and value.startswith("/app/"), f"{key}: an absolute path in the image"
        assert repo_path_of(value) is not None, f"{key}={value} is not in the image"
    local = settings.model_copy(
        update={k: str(repo_path_of(getattr(settings, k))) for k in CATALOGUES}
    )
    runbooks, context = load_catalogues(local)
    assert runbooks.entries and context.items and load_slos(local).targets
    if component == "web":
        # the web boots on it and is ready on a migrated Postgres
        app = create_app(container=bootstrap(local))
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        listing = client.get("/api/v1/incidents")
        assert listing.status_code == 401, "the UI is on: reading needs a UI login"
        app.extensions["receiver"].engine.dispose()


def test_every_workload_gets_the_same_configuration() -> None:
    """The same environment and mounts everywhere, but for the web's metrics directory."""

    def env_of(obj: dict[str, Any]) -> dict[str, str]:
        return {k: v for k, v in manifest_env(obj).items() if k != MULTIPROC_ENV}

    def mounts_of(obj: dict[str, Any]) -> list[tuple[str, Any]]:
        skip = manifest_env(obj).get(MULTIPROC_ENV)
        return sorted((m["mountPath"], m.get("readOnly")) for c in pod_spec(obj)["containers"]
                      for m in c["volumeMounts"] if m["mountPath"] != skip)  # fmt: skip

    envs = [env_of(obj) for obj in workloads()]
    assert all(env == envs[0] for env in envs)
    mounts = [mounts_of(obj) for obj in workloads()]
    assert all(m == mounts[0] for m in mounts)


def test_more_than_one_replica_only_on_postgres() -> None:
    replicas = {o["metadata"]["name"]: o["spec"].get("replicas", 1) for o in workloads()
                if o["kind"] == "Deployment"}  # fmt: skip
    assert replicas["receiver-web"] >= 2
    assert replicas["receiver-worker"] >= 1
    urls = [
        yaml.safe_load(configmap_receiver_yaml())["database_url"],
        example_secret()["stringData"]["database-url"],
    ]
    for url in urls:
        assert url.startswith("postgresql://"), "several replicas need Postgres, not SQLite"
