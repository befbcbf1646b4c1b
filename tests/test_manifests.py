"""Static checks of the deployment files; no Kubernetes, cloud account or Ray cluster needed.

Covers infra/k8s/*.yaml (KubeRay RayCluster / RayJob / RayCronJob), cluster/aws-gpu.yaml (Ray
cluster launcher), infra/Dockerfile (the image name), infra/grafana/*.json, cluster/local_cluster.sh
and docs/deploy.md: everything parses, every entry point and config they reference exists, the
image name is the one the Dockerfile defines, and the KubeRay resources use the CRDs' real field
names and satisfy the operator's validation rules.

Paths that other parts of the project provide (jobs/*.py, jobs/runtime_env.yaml, configs/...) are
checked here too, on purpose: a deploy file that names a missing entry point fails in the cluster,
so it fails here first.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
LAUNCHER = ROOT / "cluster" / "aws-gpu.yaml"
LOCAL_CLUSTER = ROOT / "cluster" / "local_cluster.sh"
DASHBOARD = ROOT / "infra" / "grafana" / "quasar-dashboard.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# ---------------------------------------------------------------------------------------------
# KubeRay API, as published. Source: github.com/ray-project/kuberay at tag v1.7.0 (identical to
# master commit feeaf72, 2026-08-19), the generated CRDs
#   ray-operator/config/crd/bases/ray.io_rayclusters.yaml
#   ray-operator/config/crd/bases/ray.io_rayjobs.yaml
#   ray-operator/config/crd/bases/ray.io_raycronjobs.yaml
# (spec.versions[name=v1].schema.openAPIV3Schema.properties.spec: `properties` and `required`),
# generated from ray-operator/apis/ray/v1/{raycluster,rayjob,raycronjob}_types.go. The rules in
# `validate_*` below restate ray-operator/controllers/ray/utils/validation.go at the same commit.
# RayCronJob exists since KubeRay v1.6.0 (alpha, feature gate RayCronJob); timeZone since v1.7.0.
# ---------------------------------------------------------------------------------------------
API_VERSION = "ray.io/v1"

RAYCLUSTER_SPEC_FIELDS = {
    "authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
    "headGroupSpec", "headServiceAnnotations", "historyServerOptions", "managedBy",
    "networkPolicy", "rayVersion", "suspend", "tlsOptions", "upgradeStrategy", "workerGroupSpecs",
}
RAYCLUSTER_SPEC_REQUIRED = {"headGroupSpec"}
HEAD_GROUP_FIELDS = {
    "enableIngress", "headService", "ingressOptions", "labels", "rayStartParams", "resources",
    "serviceType", "template",
}
HEAD_GROUP_REQUIRED = {"template"}
WORKER_GROUP_FIELDS = {
    "groupName", "idleTimeoutSeconds", "labels", "maxReplicas", "minReplicas", "numOfHosts",
    "priority", "rayStartParams", "replicas", "resources", "scaleStrategy", "suspend", "template",
}
WORKER_GROUP_REQUIRED = {"groupName", "maxReplicas", "minReplicas", "template"}
AUTH_OPTIONS_FIELDS = {"enableK8sTokenAuth", "mode", "secretName"}
AUTH_MODES = {"disabled", "token"}  # enum of authOptions.mode
AUTOSCALER_OPTIONS_FIELDS = {
    "args", "command", "env", "envFrom", "idleTimeoutSeconds", "image", "imagePullPolicy",
    "resources", "securityContext", "upscalingMode", "version", "volumeMounts",
}
UPSCALING_MODES = {"Default", "Aggressive", "Conservative"}

RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "entrypoint",
    "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy",
    "metadata", "preRunningDeadlineSeconds", "rayClusterSpec", "runtimeEnvYAML",
    "shutdownAfterJobFinishes", "submissionMode", "submitterConfig", "submitterPodTemplate",
    "suspend", "ttlSecondsAfterFinished",
}
RAYJOB_SPEC_REQUIRED: set[str] = set()  # none in the CRD; the controller wants one of
#                                         rayClusterSpec / clusterSelector (checked below)
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}  # JobSubmissionMode

RAYCRONJOB_SPEC_FIELDS = {"jobTemplate", "schedule", "suspend", "timeZone"}
RAYCRONJOB_SPEC_REQUIRED = {"jobTemplate", "schedule"}  # jobTemplate is a RayJob spec

# Name limits from ray-operator/controllers/ray/utils/constant.go (MaxRayClusterNameLength = 53,
# MaxRayJobNameLength = 53 - 6, MaxRayCronJobNameLength = 47 - 11).
MAX_NAME = {"RayCluster": 53, "RayJob": 47, "RayCronJob": 36}
MIN_RAY_VERSION_FOR_TOKEN_AUTH = (2, 52, 0)  # validation.go: authOptions.mode token

# What this project's deploy files must set, beyond the CRD's own requirements.
PROJECT_RAYJOB_FIELDS = {
    "entrypoint", "jobId", "runtimeEnvYAML", "submissionMode", "shutdownAfterJobFinishes",
    "ttlSecondsAfterFinished", "rayClusterSpec",
}
BATCH_ENTRYPOINT = "python jobs/batch_reason.py --config configs/runs/sample.yaml"
DAILY_ENTRYPOINT_PREFIX = "python jobs/scheduled_run.py --config configs/runs/daily.yaml"
TOKEN_SECRET_KEY = "auth_token"  # KubeRay's RAY_AUTH_TOKEN_SECRET_KEY

# Top-level runtime_env fields Ray 2.60 knows (ray.runtime_env.RuntimeEnv.known_fields, public).
RUNTIME_ENV_FIELDS = {
    "conda", "config", "container", "env_vars", "excludes", "image_uri", "java_jars", "pip",
    "py_executable", "py_modules", "uv", "worker_process_setup_hook", "working_dir",
}

# Entry points and configs the deploy files are meant to reference; each must exist in the repo.
EXPECTED_REFERENCES = [
    "jobs/batch_reason.py",
    "jobs/runtime_env.yaml",
    "jobs/eval_sweep.py",
    "jobs/scheduled_run.py",
    "configs/runs/sample.yaml",
    "configs/runs/daily.yaml",
    "configs/sweeps/small.yaml",
]


# --- helpers -----------------------------------------------------------------------------------
def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects(kind: str) -> list[dict]:
    return [d for p in k8s_files() for d in load_docs(p) if d.get("kind") == kind]


def the_object(kind: str) -> dict:
    objs = k8s_objects(kind)
    assert len(objs) == 1, f"expected exactly one {kind} in infra/k8s/, found {len(objs)}"
    return objs[0]


def cluster_specs() -> list[tuple[str, dict]]:
    """Every RayCluster spec: the RayCluster's, the RayJob's, the RayCronJob's job template's."""
    out = [("RayCluster", the_object("RayCluster")["spec"])]
    out.append(("RayJob", the_object("RayJob")["spec"]["rayClusterSpec"]))
    out.append(("RayCronJob", the_object("RayCronJob")["spec"]["jobTemplate"]["rayClusterSpec"]))
    return out


def job_specs() -> list[tuple[str, dict]]:
    return [
        ("RayJob", the_object("RayJob")["spec"]),
        ("RayCronJob.jobTemplate", the_object("RayCronJob")["spec"]["jobTemplate"]),
    ]


def walk(node, key: str):
    """Every value stored under `key` anywhere in a parsed YAML/JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def dockerfile_image() -> str:
    names = re.findall(r"^# image: (\S+)\s*$", DOCKERFILE.read_text(), flags=re.M)
    assert len(names) == 1, "infra/Dockerfile must document its image once, as '# image: NAME:TAG'"
    return names[0]


def dockerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)\s*$", DOCKERFILE.read_text(), flags=re.M)
    assert m, f"infra/Dockerfile has no 'ARG {name}=...'"
    return m.group(1)


def pyproject_version() -> str:
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert m
    return m.group(1)


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- 1. everything parses ----------------------------------------------------------------------
def deploy_yaml_files() -> list[Path]:
    return k8s_files() + sorted((ROOT / "infra" / "helm").glob("*.yaml")) + sorted(
        (ROOT / "cluster").glob("*.yaml"))


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    docs = load_docs(path)
    assert docs, f"{path} is empty"
    if path.parent == K8S:
        for d in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(d), f"{path}: not a Kubernetes object"
            assert d["metadata"].get("name")


def test_expected_manifests_present():
    kinds = {d["kind"] for p in k8s_files() for d in load_docs(p)}
    assert {"RayCluster", "RayJob", "RayCronJob"} <= kinds
    for kind in ("RayCluster", "RayJob", "RayCronJob"):
        assert the_object(kind)["apiVersion"] == API_VERSION


def test_operator_values_enable_the_raycronjob_feature_gate():
    values = yaml.safe_load((ROOT / "infra" / "helm" / "kuberay-operator-values.yaml").read_text())
    gates = {g["name"]: g["enabled"] for g in values["featureGates"]}
    assert gates.get("RayCronJob") is True  # alpha, default off (ray-operator/pkg/features)


def test_grafana_dashboard_parses_and_uses_prefixed_metric_names():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs
    text = "\n".join(exprs)
    # Ray exports an app metric NAME as ray_NAME; Ray 2.60 adds _total to counters and
    # _bucket/_sum/_count to histograms (checked against a live Ray 2.60 exporter, docs/deploy.md).
    for counter in ("quasar_tasks_completed", "quasar_tokens_generated"):
        assert f"ray_{counter}_total" in text, counter
    assert "ray_quasar_errors_total" in text  # quasar_dist/batch/metrics.py records quasar_errors
    assert "ray_quasar_step_latency_s_bucket" in text
    unprefixed = re.findall(r"(?<![\w])quasar_\w+", text)
    assert not unprefixed, f"metric names without Ray's ray_ prefix: {unprefixed}"


# --- 2. referenced entry points and configs exist ----------------------------------------------
REF_RE = re.compile(r"(?<![\w./-])((?:jobs/[\w./-]+\.(?:py|ya?ml))|(?:configs/[\w./-]+\.ya?ml))")


def deploy_texts() -> dict[str, str]:
    files = deploy_yaml_files() + [LOCAL_CLUSTER, DEPLOY_DOC, DOCKERFILE]
    return {str(p.relative_to(ROOT)): p.read_text() for p in files if p.exists()}


def referenced_paths() -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for name, text in deploy_texts().items():
        for m in REF_RE.finditer(text):
            refs.setdefault(m.group(1), []).append(name)
    return refs


def all_checked_paths() -> list[str]:
    return sorted(set(referenced_paths()) | set(EXPECTED_REFERENCES))


@pytest.mark.parametrize("rel", all_checked_paths())
def test_referenced_path_exists(rel):
    where = referenced_paths().get(rel, ["(expected reference)"])
    assert (ROOT / rel).is_file(), f"{rel} is referenced by {sorted(set(where))} but does not exist"


def test_expected_paths_are_referenced():
    refs = referenced_paths()
    missing = [p for p in EXPECTED_REFERENCES if p not in refs]
    assert not missing, f"deploy files/docs no longer reference {missing}"


def test_entrypoints_run_project_scripts():
    assert the_object("RayJob")["spec"]["entrypoint"].strip().startswith(BATCH_ENTRYPOINT)
    cron_entry = the_object("RayCronJob")["spec"]["jobTemplate"]["entrypoint"].strip()
    assert cron_entry.startswith(DAILY_ENTRYPOINT_PREFIX)
    for _, spec in job_specs():
        argv = spec["entrypoint"].split()
        assert argv[0] == "python" and argv[1].startswith("jobs/") and argv[1].endswith(".py")


# --- 3. one image name, defined by infra/Dockerfile --------------------------------------------
def test_dockerfile_documents_the_image_and_it_matches_the_package_version():
    name, _, tag = dockerfile_image().partition(":")
    assert name == "quasar-dist"
    assert tag == pyproject_version()
    assert f'org.opencontainers.image.version="{tag}"' in DOCKERFILE.read_text()


def test_every_manifest_image_is_the_dockerfile_image():
    image = dockerfile_image()
    found = [img for p in k8s_files() for d in load_docs(p) for img in walk(d, "image")]
    assert found, "no container images in infra/k8s"
    assert set(found) == {image}, f"images in infra/k8s: {sorted(set(found))}, Dockerfile: {image}"


def test_ray_version_is_the_same_everywhere():
    ray_version = dockerfile_arg("RAY_VERSION")
    for where, spec in cluster_specs():
        assert spec["rayVersion"] == ray_version, where
    launcher_text = LAUNCHER.read_text()
    pins = set(re.findall(r"ray\[[\w,]+\]==([\d.]+)", launcher_text))
    assert pins == {ray_version}, f"cluster/aws-gpu.yaml pins ray {pins}, Dockerfile {ray_version}"


def test_dockerfile_installs_torch_before_the_project():
    text = DOCKERFILE.read_text()
    torch_at = text.find('pip install "torch==')
    project_at = text.find("pip install .")
    assert 0 <= torch_at < project_at
    assert "TORCH_VARIANT" in text and "--index-url" in text


# --- 4. KubeRay field names and validation rules -----------------------------------------------
def assert_fields(where: str, obj: dict, allowed: set[str], required: set[str]):
    unknown = set(obj) - allowed
    assert not unknown, f"{where}: fields not in the KubeRay CRD: {sorted(unknown)}"
    missing = required - set(obj)
    assert not missing, f"{where}: required fields missing: {sorted(missing)}"


def validate_cluster_spec(where: str, spec: dict):
    assert_fields(where, spec, RAYCLUSTER_SPEC_FIELDS, RAYCLUSTER_SPEC_REQUIRED)
    head = spec["headGroupSpec"]
    assert_fields(f"{where}.headGroupSpec", head, HEAD_GROUP_FIELDS, HEAD_GROUP_REQUIRED)
    groups = [("headGroupSpec", head)]
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    for i, wg in enumerate(spec.get("workerGroupSpecs", [])):
        assert_fields(f"{where}.workerGroupSpecs[{i}]", wg, WORKER_GROUP_FIELDS, WORKER_GROUP_REQUIRED)
        lo, hi = wg["minReplicas"], wg["maxReplicas"]
        assert 0 <= lo <= hi, f"{where}: minReplicas {lo} > maxReplicas {hi}"
        if "replicas" in wg:
            assert lo <= wg["replicas"] <= hi, f"{where}: replicas outside [min, max]"
        groups.append((wg["groupName"], wg))
    if "autoscalerOptions" in spec:
        assert autoscaling, f"{where}: autoscalerOptions without enableInTreeAutoscaling"
        opts = spec["autoscalerOptions"]
        assert set(opts) <= AUTOSCALER_OPTIONS_FIELDS, f"{where}: {set(opts) - AUTOSCALER_OPTIONS_FIELDS}"
        assert opts.get("upscalingMode", "Default") in UPSCALING_MODES
        assert opts.get("idleTimeoutSeconds", 0) >= 0
    for name, group in groups:
        params = group.get("rayStartParams", {})
        # CRD: rayStartParams is map[string]string; validation.go: no `labels`, and no resource
        # both in rayStartParams and in the group-level `resources` field.
        bad = {k: v for k, v in params.items() if not isinstance(v, str)}
        assert not bad, f"{where}/{name}: rayStartParams values must be strings: {bad}"
        assert "labels" not in params
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
            assert not group.get("resources"), f"{where}/{name}: resources set twice"
        assert containers(group["template"]), f"{where}/{name}: no containers"
    auth = spec.get("authOptions")
    if auth:
        assert set(auth) <= AUTH_OPTIONS_FIELDS
        assert auth.get("mode", "token") in AUTH_MODES
        if auth.get("mode", "token") == "token":
            assert version_tuple(spec.get("rayVersion", "")) >= MIN_RAY_VERSION_FOR_TOKEN_AUTH, (
                f"{where}: token auth needs rayVersion >= 2.52.0")
        assert not auth.get("enableK8sTokenAuth"), "K8s token auth is unsupported for RayJob"


def validate_job_spec(where: str, spec: dict):
    assert_fields(where, spec, RAYJOB_SPEC_FIELDS, RAYJOB_SPEC_REQUIRED)
    assert spec.get("rayClusterSpec") or spec.get("clusterSelector"), (
        f"{where}: one of rayClusterSpec or clusterSelector must be set")
    mode = spec.get("submissionMode", "K8sJobMode")
    assert mode in SUBMISSION_MODES
    if mode == "SidecarMode":
        assert "submitterPodTemplate" not in spec and "submitterConfig" not in spec, (
            f"{where}: SidecarMode supports neither submitterPodTemplate nor submitterConfig")
    if mode == "InteractiveMode":
        assert spec.get("backoffLimit", 0) == 0
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    assert isinstance(ttl, int) and ttl >= 0
    if ttl > 0:
        assert spec.get("shutdownAfterJobFinishes") is True, (
            f"{where}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if spec.get("suspend"):
        assert spec.get("shutdownAfterJobFinishes") is True
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if key in spec:
            assert isinstance(spec[key], int) and spec[key] > 0, f"{where}.{key}"
    if "backoffLimit" in spec:
        assert isinstance(spec["backoffLimit"], int) and spec["backoffLimit"] >= 0
    if spec.get("clusterSelector"):
        assert spec.get("backoffLimit", 0) == 0
    runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML", "") or "{}")
    assert isinstance(runtime_env, dict), f"{where}: runtimeEnvYAML must be a YAML mapping"
    unknown = set(runtime_env) - RUNTIME_ENV_FIELDS
    assert not unknown, f"{where}: runtime_env fields Ray does not know: {unknown}"
    if spec.get("metadata"):
        assert all(isinstance(v, str) for v in spec["metadata"].values())
    if spec.get("rayClusterSpec"):
        validate_cluster_spec(f"{where}.rayClusterSpec", spec["rayClusterSpec"])


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob", "RayCronJob"])
def test_names_are_valid_for_kuberay(kind):
    name = the_object(kind)["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), f"{name}: not a DNS-1035 label"
    assert len(name) <= MAX_NAME[kind], f"{kind} name {name!r} longer than {MAX_NAME[kind]}"


def test_raycluster_uses_crd_fields():
    validate_cluster_spec("RayCluster.spec", the_object("RayCluster")["spec"])


def test_rayjob_uses_crd_fields_and_carries_project_fields():
    spec = the_object("RayJob")["spec"]
    validate_job_spec("RayJob.spec", spec)
    missing = PROJECT_RAYJOB_FIELDS - set(spec)
    assert not missing, f"RayJob.spec lacks {sorted(missing)}"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["jobId"].strip()


def test_raycronjob_uses_crd_fields_and_carries_project_fields():
    cron = the_object("RayCronJob")
    spec = cron["spec"]
    assert_fields("RayCronJob.spec", spec, RAYCRONJOB_SPEC_FIELDS, RAYCRONJOB_SPEC_REQUIRED)
    # validation.go: a standard 5-field cron expression, no TZ=/CRON_TZ= inside it.
    schedule = spec["schedule"]
    assert "TZ" not in schedule and len(schedule.split()) == 5, schedule
    if "timeZone" in spec:
        assert isinstance(spec["timeZone"], str) and spec["timeZone"]
    if "suspend" in spec:
        assert isinstance(spec["suspend"], bool)
    template = spec["jobTemplate"]
    validate_job_spec("RayCronJob.spec.jobTemplate", template)
    missing = PROJECT_RAYJOB_FIELDS - set(template)
    assert not missing, f"RayCronJob.spec.jobTemplate lacks {sorted(missing)}"
    assert template["shutdownAfterJobFinishes"] is True
    # The template is copied verbatim into every scheduled RayJob: a fixed jobId is only safe when
    # every run gets its own cluster (rayClusterSpec), never on a shared one (clusterSelector).
    if template.get("jobId"):
        assert template.get("rayClusterSpec") and not template.get("clusterSelector")


# --- 5. GPUs, token auth, metrics: the project's cluster shape ---------------------------------
@pytest.mark.parametrize("where", ["RayCluster", "RayJob", "RayCronJob"])
def test_cpu_head_and_gpu_workers(where):
    spec = dict(cluster_specs())[where]
    head = spec["headGroupSpec"]
    for c in containers(head["template"]):
        for section in ("requests", "limits"):
            assert "nvidia.com/gpu" not in c.get("resources", {}).get(section, {}), "GPU on the head"
    assert head["rayStartParams"].get("num-gpus", "0") == "0"
    assert head["rayStartParams"].get("dashboard-host") == "0.0.0.0"
    gpu_groups = [wg for wg in spec["workerGroupSpecs"] if wg["rayStartParams"].get("num-gpus")]
    assert gpu_groups, f"{where}: no GPU worker group"
    for wg in gpu_groups:
        ray_container = containers(wg["template"])[0]
        limits = ray_container["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) == 1
        assert wg["rayStartParams"]["num-gpus"] == str(limits["nvidia.com/gpu"])


def ray_containers(spec: dict) -> list[tuple[str, dict]]:
    groups = [("head", spec["headGroupSpec"])] + [(wg["groupName"], wg) for wg in spec["workerGroupSpecs"]]
    return [(name, containers(g["template"])[0]) for name, g in groups]


@pytest.mark.parametrize("where", ["RayCluster", "RayJob", "RayCronJob"])
def test_token_auth_from_one_secret(where):
    spec = dict(cluster_specs())[where]
    auth = spec["authOptions"]
    assert auth["mode"] == "token"
    secret = auth["secretName"]
    assert secret == the_object("RayCluster")["spec"]["authOptions"]["secretName"]
    pods = ray_containers(spec)
    if where != "RayCluster":
        job = dict(job_specs())["RayJob" if where == "RayJob" else "RayCronJob.jobTemplate"]
        if "submitterPodTemplate" in job:
            pods.append(("submitter", containers(job["submitterPodTemplate"])[0]))
    for name, container in pods:
        env = env_of(container)
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}/{name}"
        ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert ref == {"name": secret, "key": TOKEN_SECRET_KEY}, f"{where}/{name}: {ref}"


@pytest.mark.parametrize("where", ["RayCluster", "RayJob", "RayCronJob"])
def test_metrics_port_exposed_and_annotated(where):
    spec = dict(cluster_specs())[where]
    groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    for group in groups:
        port = group["rayStartParams"]["metrics-export-port"]
        annotations = group["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port
        ports = {p["name"]: p["containerPort"] for p in containers(group["template"])[0].get("ports", [])}
        assert str(ports.get("metrics")) == port


def test_rayjob_runtime_env_matches_jobs_runtime_env():
    path = ROOT / "jobs" / "runtime_env.yaml"
    if not path.exists():
        pytest.skip("jobs/runtime_env.yaml not written yet (its absence fails test_referenced_path_exists)")
    reference = yaml.safe_load(path.read_text()) or {}
    for where, spec in job_specs():
        ours = yaml.safe_load(spec["runtimeEnvYAML"])
        assert "working_dir" in ours, where
        for key, value in (reference.get("env_vars") or {}).items():
            assert ours.get("env_vars", {}).get(key) == value, (
                f"{where}: env var {key} differs from jobs/runtime_env.yaml")


# --- 6. cluster launcher YAML ------------------------------------------------------------------
def test_launcher_config_shape():
    config = yaml.safe_load(LAUNCHER.read_text())
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p")), "head must be a CPU type"
    gpu_types = [t for name, t in types.items() if name != config["head_node_type"]
                 and t["node_config"]["InstanceType"].startswith(("g", "p"))]
    assert gpu_types, "no GPU worker node type"
    assert config["file_mounts"].get("~/quasar-dist") == "."
    setup = "\n".join(config["setup_commands"])
    assert "torch==" in setup and "-e ~/quasar-dist" in setup
    assert setup.find("torch==") < setup.find("-e ~/quasar-dist"), "torch must be installed first"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = "\n".join(config[key])
        assert "ray start" in start
        assert "RAY_AUTH_MODE=token" in start and "RAY_AUTH_TOKEN_PATH=" in start, key
        assert "--metrics-export-port=" in start
    assert "--dashboard-host=0.0.0.0" in "\n".join(config["head_start_ray_commands"])


def test_launcher_config_passes_ray_validation():
    pytest.importorskip("jsonschema")
    util = pytest.importorskip("ray.autoscaler._private.util")
    config = yaml.safe_load(LAUNCHER.read_text())
    util.validate_config(util.prepare_config(config))  # Ray's own schema and checks, offline


# --- 7. the local cluster script ---------------------------------------------------------------
def test_local_cluster_script_syntax():
    assert os.access(LOCAL_CLUSTER, os.X_OK), "cluster/local_cluster.sh must be executable"
    subprocess.run(["bash", "-n", str(LOCAL_CLUSTER)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_local_cluster_script_shellcheck():
    subprocess.run(["shellcheck", "-S", "warning", str(LOCAL_CLUSTER)], check=True)


@pytest.mark.slow
def test_local_cluster_starts_and_stops_only_its_processes(tmp_path):
    """Start 1 head + 1 worker, check both joined, stop, check every recorded pid is gone."""
    env = dict(os.environ, TMPDIR="/tmp", QUASAR_LOCAL_CLUSTER_FILE=str(tmp_path / "current"),
               KEEP_STATE="1")
    start = subprocess.run([str(LOCAL_CLUSTER), "start", "--workers", "1"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert start.returncode == 0, start.stdout + start.stderr
    state = Path((tmp_path / "current").read_text().strip())
    pids = [int(line.split()[1]) for line in (state / "pids").read_text().splitlines()]
    try:
        assert "nodes: 2" in start.stdout
        assert (state / "auth_token").stat().st_mode & 0o077 == 0
    finally:
        stop = subprocess.run([str(LOCAL_CLUSTER), "stop", str(state)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or str(state) not in Path(
            f"/proc/{pid}/cmdline").read_text(errors="replace"), f"pid {pid} still running"
    shutil.rmtree(state, ignore_errors=True)


# --- 8. the deploy doc -------------------------------------------------------------------------
def test_deploy_doc_covers_build_submit_and_auth():
    text = DEPLOY_DOC.read_text()
    assert dockerfile_image() in text
    assert re.search(r"ray job submit --address \S+ --working-dir \. -- " + re.escape(BATCH_ENTRYPOINT), text)
    for needle in ("RAY_AUTH_MODE=token", "quasar-ray-token", "RayCronJob", "ray_quasar_"):
        assert needle in text, needle
