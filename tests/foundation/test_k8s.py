"""No cluster runs here, so the Kubernetes manifests (deploy/k8s/) are checked against the code.

Each overlay is rendered by kustomize (built into kubectl, as `kubectl apply -k` would render
it), every object is validated against the Kubernetes API schema of the oldest version the
manifests support (kubernetes-validate, strict: an unknown field fails), and then what no schema
can know is checked against finprint itself: that every FINPRINT_* variable is a setting of the
service its container runs, that ports and probes are the services' own, and that the matcher's
shards, the Services, autoscalers and disruption budgets fit together.
"""

from __future__ import annotations

import functools
import re
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from finprint.services import DEFAULT_PORTS, SERVICES
from finprint.settings_doc import env_names

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
INGEST_TEMPLATE = K8S / "jobs" / "ingest-workers.yaml"
UPGRADE_TEMPLATE = K8S / "jobs" / "model-upgrade.yaml"
DUPLICATES_CRONJOB = K8S / "jobs" / "duplicates-cronjob.yaml"
SECRET_EXAMPLE = K8S / "base" / "secret.example.yaml"
SECRET_NAME = "finprint-secrets"
SETTINGS_CONFIGMAP = "finprint-settings"
# The pod-index label that gives a matcher shard its number is there from Kubernetes 1.28 on.
OLDEST_KUBERNETES = "1.28.0"
STATELESS = ("gateway", "detector", "embedder", "catalog")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
GPU = "nvidia.com/gpu"

Doc = dict[str, Any]


# --- rendering -------------------------------------------------------------------------------


@functools.cache
def rendered(overlay: str) -> tuple[Doc, ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (which carries kustomize) is needed to render deploy/k8s/overlays"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kustomize failed on overlays/{overlay}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@functools.cache
def ingest_job() -> Doc:
    """The worker Job template as `envsubst` fills it in (the README's command)."""
    text = string.Template(INGEST_TEMPLATE.read_text()).substitute(JOB_ID="0f9c2d4e", WORKERS="3")
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    return doc


@functools.cache
def upgrade_job() -> Doc:
    """The model-upgrade Job template as `envsubst` fills it in (docs/model-upgrades.md's command)."""
    text = string.Template(UPGRADE_TEMPLATE.read_text()).substitute(MODEL_VERSION="finprint_embedder:3", WORKERS="2")
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    return doc


def all_objects() -> Iterator[tuple[str, Doc]]:
    """Every object a cluster would receive, with where it comes from."""
    for overlay in OVERLAYS:
        for doc in rendered(overlay):
            yield f"overlays/{overlay}", doc
    yield "jobs/ingest-workers.yaml", ingest_job()
    yield "jobs/model-upgrade.yaml", upgrade_job()


def find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def pod_spec(workload: Doc) -> Doc:
    return workload["spec"]["template"]["spec"]


def containers(workload: Doc, *, init: bool = True) -> list[Doc]:
    spec = pod_spec(workload)
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def workloads(docs: tuple[Doc, ...] | list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def service_run_by(container: Doc) -> str | None:
    """The finprint service whose code (and so whose settings) a container runs, from its command."""
    command = container.get("command", []) + container.get("args", [])
    if command[:2] == ["finprint", "serve"]:
        return command[2]
    if command[:2] == ["finprint", "migrate"]:
        return "catalog"
    if command[:2] == ["finprint", "worker"]:
        return "gateway"  # the ingest worker runs the gateway's orchestration with its settings
    return None


def settings_configmap(docs: tuple[Doc, ...]) -> dict[str, str]:
    configmap = find(docs, "ConfigMap", SETTINGS_CONFIGMAP)
    assert configmap, f"ConfigMap {SETTINGS_CONFIGMAP} missing"
    return configmap["data"]


def env_value(container: Doc, name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def resolve_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"container {container['name']} has no port named {port!r}"
    return named[0]


def selects(selector: dict[str, str], workload: Doc) -> bool:
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def serve_containers(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc, str]]:
    for workload in workloads(docs):
        for container in containers(workload, init=False):
            service = service_run_by(container)
            if service and container["command"][:2] == ["finprint", "serve"]:
                yield workload, container, service


def files_listed_by(kustomization_file: Path) -> list[str]:
    kustomization = yaml.safe_load(kustomization_file.read_text())
    listed = list(kustomization.get("resources", []))
    listed += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        listed += generator.get("envs", []) + [f.partition("=")[2] or f for f in generator.get("files", [])]
    return listed


# --- the files themselves --------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(K8S.rglob("*.yaml")), ids=lambda p: str(p.relative_to(K8S)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no document"
    for doc in docs:
        assert isinstance(doc, dict) and "kind" in doc, f"{path}: a document without a kind"


@pytest.mark.parametrize(
    "path", sorted(K8S.rglob("kustomization.yaml")), ids=lambda p: str(p.parent.relative_to(K8S))
)
def test_kustomizations_list_only_files_that_exist(path: Path) -> None:
    listed = files_listed_by(path)
    assert listed
    for entry in listed:
        assert (path.parent / entry).exists(), f"{path.relative_to(REPO)} lists {entry}, which does not exist"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_build_on_the_base(overlay: str) -> None:
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    assert "../../base" in kustomization["resources"]
    assert find(rendered(overlay), "Namespace", "finprint")
    assert all(
        d["metadata"].get("namespace") == "finprint" for d in rendered(overlay) if d["kind"] != "Namespace"
    )


@pytest.mark.parametrize(
    "where", [*(f"overlays/{o}" for o in OVERLAYS), "jobs/ingest-workers.yaml", "jobs/model-upgrade.yaml",
              "jobs/duplicates-cronjob.yaml", "secret"]
)
def test_every_object_matches_the_kubernetes_schema(where: str) -> None:
    if where == "secret":
        docs = [d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d]
    elif where == "jobs/duplicates-cronjob.yaml":
        docs = [d for d in yaml.safe_load_all(DUPLICATES_CRONJOB.read_text()) if d]
    else:
        docs = [doc for source, doc in all_objects() if source == where]
    invalid = [
        f"{doc['kind']} {doc['metadata'].get('name')}: {problem}"
        for doc in docs
        if (problem := schema_problem(doc))
    ]
    assert not invalid, f"{where}: " + "; ".join(invalid)


def schema_problem(doc: Doc) -> str | None:
    """The first line of what the API server would reject in this object (the full error quotes
    the whole schema)."""
    try:
        kubernetes_validate.validate(doc, OLDEST_KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{str(error).splitlines()[0]} at {list(error.path)}"
    return None


# --- settings: every FINPRINT_* name is a real setting of the service that reads it ----------


def variables_set_for(service: str) -> dict[str, str]:
    """Every FINPRINT_* variable handed to a container of this service, with where it is set.

    The shared ConfigMap reaches every pod; each service reads only its own prefix, so a key of
    the ConfigMap is checked against the service its prefix names.
    """
    found: dict[str, str] = {}
    prefix = f"FINPRINT_{service.upper()}_"
    for source, doc in all_objects():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == SETTINGS_CONFIGMAP:
            found |= {k: f"{source} ConfigMap" for k in doc["data"] if k.startswith(prefix)}
        if doc["kind"] in WORKLOAD_KINDS:
            for container in containers(doc):
                if service_run_by(container) == service:
                    names = [e["name"] for e in container.get("env", []) if e["name"].startswith("FINPRINT_")]
                    found |= {n: f"{source} {doc['kind']} {doc['metadata']['name']}" for n in names}
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_env_var_is_a_setting_of_its_service(service: str) -> None:
    known = set(env_names(service))
    used = variables_set_for(service)
    assert used, f"no manifest configures {service}"
    unknown = {name: where for name, where in sorted(used.items()) if name not in known}
    assert not unknown, f"{service} is given variables no setting of it reads: {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_keys_name_a_service_and_containers_without_one_get_none(overlay: str) -> None:
    docs = rendered(overlay)
    prefixes = tuple(f"FINPRINT_{s.upper()}_" for s in SERVICES)
    strays = [k for k in settings_configmap(docs) if not k.startswith(prefixes)]
    assert not strays, f"ConfigMap keys that belong to no service: {strays}"
    for workload in workloads(docs):
        for container in containers(workload):
            if service_run_by(container) is None:
                finprint_env = [
                    e["name"] for e in container.get("env", []) if e["name"].startswith("FINPRINT_")
                ]
                assert not finprint_env, (
                    f"{container['name']} runs no finprint service but sets {finprint_env}"
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_references_resolve(overlay: str) -> None:
    docs = rendered(overlay) + (ingest_job(),)
    settings = settings_configmap(rendered(overlay))
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert example["metadata"]["name"] == SECRET_NAME
    for workload in workloads(docs):
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == SETTINGS_CONFIGMAP
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in settings, (
                        f"{entry['name']}: no such ConfigMap key"
                    )
                if "secretKeyRef" in ref:
                    secret = ref["secretKeyRef"]
                    assert secret["name"] == SECRET_NAME, f"{entry['name']} reads an undocumented Secret"
                    assert secret["key"] in example["stringData"], (
                        f"{entry['name']} reads key {secret['key']!r}, missing from secret.example.yaml"
                    )


def test_no_secret_is_committed_or_deployed() -> None:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    assert all(value.count("CHANGE-ME") for value in example["stringData"].values()), "placeholders only"
    for overlay in OVERLAYS:
        assert not [d for d in rendered(overlay) if d["kind"] == "Secret"], "Secrets are created out of band"
    for kustomization in K8S.rglob("kustomization.yaml"):
        assert SECRET_EXAMPLE.name not in [Path(f).name for f in files_listed_by(kustomization)]
    readme = (K8S / "README.md").read_text()
    for key in example["stringData"]:
        assert key in readme, f"README does not say how to create the secret key {key}"


# --- ports, probes, Services -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_ports_and_probes_agree_with_the_service(overlay: str, service: str) -> None:
    port = DEFAULT_PORTS[service]
    found = [(w, c) for w, c, s in serve_containers(rendered(overlay)) if s == service]
    assert len(found) == 1, f"expected one workload serving {service}, found {len(found)}"
    workload, container = found[0]
    command = container["command"]
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0", "bind all interfaces, or probes cannot reach it"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == service
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path, f"{service} {probe}"
        assert resolve_port(container, container[probe]["httpGet"]["port"]) == port, f"{service} {probe}"
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_pods_and_targets_their_ports(overlay: str) -> None:
    docs = rendered(overlay)
    for service in (d for d in docs if d["kind"] == "Service"):
        backends = [w for w in workloads(docs) if selects(service["spec"]["selector"], w)]
        name = service["metadata"]["name"]
        assert backends, f"Service {name} selects no pods"
        for workload in backends:
            container = containers(workload, init=False)[0]
            for port in service["spec"]["ports"]:
                assert resolve_port(container, port["targetPort"]) == port["port"], (
                    f"Service {name} port {port}"
                )


def peer_address(value: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"(?:https?://)?([a-z0-9.{}-]+):(\d+)/?", value)
    return (match[1], int(match[2])) if match else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_peer_urls_reach_a_service_on_the_right_port(overlay: str) -> None:
    docs = rendered(overlay)
    urls = {k: v for k, v in settings_configmap(docs).items() if k.endswith("_URL")}
    for workload in workloads(docs):
        for container in containers(workload):
            urls |= {
                e["name"]: e["value"]
                for e in container.get("env", [])
                if e["name"].endswith("_URL") and "value" in e
            }
    assert urls
    for key, value in urls.items():
        address = peer_address(value)
        assert address, f"{key}={value} is not host:port"
        host, port = address
        pod, _, service_name = host.format(shard=0).rpartition(".")
        service = find(docs, "Service", service_name)
        assert service, f"{key}={value}: no Service {service_name}"
        assert port in [p["port"] for p in service["spec"]["ports"]], (
            f"{key}={value}: {service_name} lacks port {port}"
        )
        if pod:  # a pod's own name under a headless Service: a StatefulSet pod
            assert service["spec"].get("clusterIP") == "None", f"{key}: {service_name} is not headless"
            owners = [
                w for w in docs if w["kind"] == "StatefulSet" and w["spec"]["serviceName"] == service_name
            ]
            assert owners and pod.startswith(owners[0]["metadata"]["name"] + "-"), f"{key}: no pod {pod}"


# --- the matcher's shards --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_matcher_pods_are_shards_the_gateway_can_address(overlay: str) -> None:
    docs = rendered(overlay)
    matcher = find(docs, "StatefulSet", "matcher")
    assert matcher, "the matcher runs as a StatefulSet"
    headless = find(docs, "Service", matcher["spec"]["serviceName"])
    assert headless and headless["spec"]["clusterIP"] == "None"
    (container,) = containers(matcher, init=False)
    index = next(e for e in container["env"] if e["name"] == "FINPRINT_MATCHER_SHARD_INDEX")
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    replicas = matcher["spec"]["replicas"]
    assert env_value(container, "FINPRINT_MATCHER_SHARD_COUNT") == str(replicas)
    settings = settings_configmap(docs)
    assert settings["FINPRINT_GATEWAY_MATCHER_SHARD_COUNT"] == str(replicas)
    expected = f"http://matcher-{{shard}}.{headless['metadata']['name']}:{DEFAULT_PORTS['matcher']}"
    assert settings["FINPRINT_GATEWAY_MATCHER_URL"] == expected
    assert not [
        h
        for h in docs
        if h["kind"] == "HorizontalPodAutoscaler" and h["spec"]["scaleTargetRef"]["name"] == "matcher"
    ], "resharding is deliberate: no autoscaler may change the shard count"


# --- scaling and disruption ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_stateless_service_has_an_autoscaler_on_an_existing_target(overlay: str) -> None:
    docs = rendered(overlay)
    autoscalers = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    for hpa in autoscalers:
        target = hpa["spec"]["scaleTargetRef"]
        workload = find(docs, target["kind"], target["name"])
        assert workload, f"HPA {hpa['metadata']['name']} targets a missing {target['kind']} {target['name']}"
        assert hpa["apiVersion"] == "autoscaling/v2"
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Resource":
                resource = metric["resource"]["name"]
                assert all(
                    resource in c["resources"]["requests"] for c in containers(workload, init=False)
                ), f"HPA on {resource} utilisation needs {resource} requests on {target['name']}"
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers} >= set(STATELESS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_and_matcher_have_disruption_budgets(overlay: str) -> None:
    docs = rendered(overlay)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for name, kind in (("gateway", "Deployment"), ("matcher", "StatefulSet")):
        workload = find(docs, kind, name)
        assert workload
        assert [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], workload)], (
            f"no PDB for {name}"
        )


# --- pods: non-root, sized ---------------------------------------------------------------------


@pytest.mark.parametrize("where", [*(f"overlays/{o}" for o in OVERLAYS), "jobs/ingest-workers.yaml"])
def test_every_pod_runs_as_non_root_with_requests_and_limits(where: str) -> None:
    pods = [w for source, w in all_objects() if source == where and w["kind"] in WORKLOAD_KINDS]
    assert pods
    for workload in pods:
        name = f"{workload['kind']} {workload['metadata']['name']}"
        pod_security = pod_spec(workload).get("securityContext", {})
        for container in containers(workload):
            security = container.get("securityContext", {})
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, (
                f"{name}: {container['name']}"
            )
            assert security.get("runAsUser", pod_security.get("runAsUser")) not in (0, None), f"{name}: uid"
            assert security.get("allowPrivilegeEscalation") is False, f"{name}: {container['name']}"
            assert not security.get("privileged"), f"{name}: {container['name']}"
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    f"{name}: {container['name']} {part}"
                )


THREAD_SETTINGS = {
    "detector": "FINPRINT_DETECTOR_INTRA_OP_THREADS",
    "embedder": "FINPRINT_EMBEDDER_INTRA_OP_THREADS",
    "matcher": "FINPRINT_MATCHER_OMP_THREADS",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_compute_threads_match_the_cpu_limit(overlay: str) -> None:
    """onnxruntime and FAISS size their thread pools by the node's cores, not the pod's CPU limit:
    on a large node that means dozens of threads throttled onto two CPUs."""
    for _, container, service in serve_containers(rendered(overlay)):
        if service == "embedder" and env_value(container, "FINPRINT_EMBEDDER_BACKEND") == "triton":
            continue  # the model runs in Triton, not in this pod
        if service in THREAD_SETTINGS:
            threads = env_value(container, THREAD_SETTINGS[service])
            assert threads is not None, f"{service} must set {THREAD_SETTINGS[service]}"
            assert threads == str(container["resources"]["limits"]["cpu"]), f"{service}: threads != CPU limit"


# --- the two overlays ----------------------------------------------------------------------------


def test_gpu_overlay_runs_triton_on_the_gpu_pool_and_the_embedder_through_it() -> None:
    docs = rendered("gpu")
    triton = find(docs, "Deployment", "triton")
    assert triton, "the gpu overlay runs Triton"
    spec = pod_spec(triton)
    assert GPU in " ".join(spec["nodeSelector"]), "Triton is scheduled on GPU nodes"
    assert [t for t in spec["tolerations"] if t["key"] == GPU], "Triton tolerates the GPU nodes' taint"
    (server,) = [c for c in spec["containers"] if c["image"].startswith("nvcr.io/nvidia/tritonserver:")]
    assert int(server["resources"]["limits"][GPU]) >= 1
    assert sorted(p["containerPort"] for p in server["ports"]) == [8000, 8001, 8002]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert resolve_port(server, server["readinessProbe"]["httpGet"]["port"]) == 8000
    # The model repository is a volume that an init container fills before Triton starts.
    repository = next(a.partition("=")[2] for a in server["command"] if a.startswith("--model-repository="))
    (mount,) = [m for m in server["volumeMounts"] if m["mountPath"] == repository]
    assert [
        c
        for c in spec["initContainers"]
        if any(m["name"] == mount["name"] for m in c.get("volumeMounts", []))
    ]

    embedder = find(docs, "Deployment", "embedder")
    (container,) = containers(embedder, init=False)
    assert env_value(container, "FINPRINT_EMBEDDER_BACKEND") == "triton"
    assert env_value(container, "FINPRINT_EMBEDDER_TRITON_URL") == "triton:8001"  # gRPC
    for name in ("detector", "embedder", "matcher"):
        (image,) = {c["image"] for w, c, s in serve_containers(docs) if s == name}
        assert image.endswith("-gpu"), f"{name} runs {image}, not its CUDA build"


def test_cpu_overlay_has_no_gpu_and_runs_the_embedder_in_process() -> None:
    docs = rendered("cpu")
    assert not [d for d in docs if d["metadata"]["name"] == "triton"], "no Triton without a GPU"
    for workload in workloads(docs):
        assert not pod_spec(workload).get("nodeSelector"), (
            f"{workload['metadata']['name']} pinned to a node pool"
        )
        for container in containers(workload):
            assert GPU not in str(container["resources"]), f"{container['name']} asks for a GPU"
            assert not container["image"].endswith("-gpu")
    (container,) = containers(find(docs, "Deployment", "embedder"), init=False)
    assert env_value(container, "FINPRINT_EMBEDDER_BACKEND") == "onnxruntime"
    assert not [e for e in container["env"] if "TRITON" in e["name"]]


# --- jobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_runs_the_catalog_migrations(overlay: str) -> None:
    job = find(rendered(overlay), "Job", "catalog-migrate")
    assert job
    (container,) = containers(job)
    assert container["command"] == ["finprint", "migrate"]
    assert container["image"].startswith("finprint/catalog:")
    (database,) = [e for e in container["env"] if e["name"] == "FINPRINT_CATALOG_DATABASE_URL"]
    assert database["valueFrom"]["secretKeyRef"]["key"] == "catalog-database-url"


def test_ingest_worker_job_runs_a_pool_of_workers_for_one_job() -> None:
    text = INGEST_TEMPLATE.read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"JOB_ID", "WORKERS"}, (
        "only what the README's envsubst fills"
    )
    job = ingest_job()
    assert job["spec"]["parallelism"] == 3
    assert "completions" not in job["spec"], "a work queue: the pool ends when the ingest job is drained"
    (container,) = containers(job)
    assert container["command"] == ["finprint", "worker", "--job-id", "0f9c2d4e"]
    assert container["image"].startswith("finprint/gateway:")
    assert job["metadata"]["name"].endswith("0f9c2d4e")


def test_duplicates_cronjob_runs_the_scan_nightly_as_the_gateway() -> None:
    (cronjob,) = [d for d in yaml.safe_load_all(DUPLICATES_CRONJOB.read_text()) if d]
    assert cronjob["kind"] == "CronJob" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, *every = cronjob["spec"]["schedule"].split()
    assert every == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), "once a day"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["finprint", "duplicates"]
    assert container["image"].startswith("finprint/gateway:")
    assert container["envFrom"] == [{"configMapRef": {"name": SETTINGS_CONFIGMAP}}]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
