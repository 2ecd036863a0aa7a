"""The Helm chart: values it uses exist and are documented, templates render to valid objects.

With `helm` on PATH the chart is linted and rendered by helm too. Without it (this machine) the
templates are checked twice: structurally (actions dropped or replaced by a placeholder, the
rest must parse as YAML) and rendered by `tests/deploy/gotemplate.py`, a small evaluator of the
Go-template/sprig subset the chart uses, under several value sets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm"
TEMPLATES = sorted(p for p in (CHART / "templates").glob("*.yaml"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

KNOWN_KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "Ingress"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
SPEC_8A = (
    "DATABASE_URL REDIS_URL CERTS_ENV JWT_SECRET_KEY JWT_ALGORITHM JWT_PUBLIC_KEY JWT_PRIVATE_KEY "
    "SMTP_HOST SMTP_PORT SMTP_USERNAME SMTP_PASSWORD SMTP_STARTTLS MAIL_FROM LOG_LEVEL"
).split()

ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
VALUE_REF = re.compile(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
BLOCK_OPEN = re.compile(r"^(if|range|with|define)\b")


def _all_template_text() -> str:
    return "\n".join(p.read_text() for p in (CHART / "templates").iterdir() if p.is_file())


def _lookup(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_value_used_by_a_template_is_defined() -> None:
    used = set(VALUE_REF.findall(_all_template_text()))
    assert used, "the templates reference no values at all?"
    missing = sorted(ref for ref in used if not _lookup(VALUES, ref))
    assert missing == []


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*[A-Za-z_][\w.-]*:", line):
            continue  # list items and comments
        previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
        if not previous.lstrip().startswith("#") and " # " not in line:
            undocumented.append(f"line {i + 1}: {line.strip()}")
    assert undocumented == []


def test_included_templates_are_defined_and_blocks_balanced() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    defined = set(re.findall(r'{{-?\s*define "([^"]+)"', helpers))
    for path in [*TEMPLATES, CHART / "templates" / "_helpers.tpl"]:
        text = path.read_text()
        for name in re.findall(r'include "([^"]+)"', text):
            assert name in defined, f"{path.name} includes undefined {name}"
        actions = [a for a in ACTION.findall(text) if not a.startswith("/*")]
        opened = sum(1 for a in actions if BLOCK_OPEN.match(a))
        closed = sum(1 for a in actions if a == "end")
        assert opened == closed, f"{path.name}: {opened} blocks opened, {closed} closed"


def _structural_render(text: str) -> str:
    """Drop lines made only of template actions; replace inline actions by a scalar."""
    text = re.sub(r"{{-?\s*/\*.*?\*/\s*-?}}", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        if line.strip() and not ACTION.sub("", line).strip():
            continue
        out.append(ACTION.sub("placeholder", line))
    return "\n".join(out)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_renders_to_a_known_kubernetes_object(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(_structural_render(path.read_text())) if d]
    assert len(docs) == 1, f"{path.name}: expected one object"
    obj = docs[0]
    assert (obj.get("apiVersion"), obj.get("kind")) in KNOWN_KINDS
    assert "name" in obj["metadata"]
    assert "labels" in obj["metadata"], "every object carries the chart's labels"


def _template(name: str) -> dict[str, Any]:
    return yaml.safe_load(_structural_render((CHART / "templates" / name).read_text()))


def test_workloads_run_as_non_root_on_a_read_only_filesystem() -> None:
    sec = VALUES["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert VALUES["podSecurityContext"]["runAsNonRoot"] is True
    assert VALUES["metrics"]["multiprocDir"].startswith("/tmp/")
    for name in (
        "api-deployment.yaml",
        "worker-deployment.yaml",
        "scheduler-deployment.yaml",
        "migration-job.yaml",
    ):
        text = (CHART / "templates" / name).read_text()
        assert "toYaml .Values.securityContext" in text, name
        assert 'include "certs.volumeMounts"' in text, name
        assert 'include "certs.volumes"' in text, name
        assert 'include "certs.podSpecCommon"' in text, name


def test_api_probes_and_scheduler_singleton() -> None:
    api = _template("api-deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    sched = _template("scheduler-deployment.yaml")["spec"]
    assert sched["replicas"] == 1
    assert sched["strategy"] == {"type": "Recreate"}
    assert sched["template"]["spec"]["containers"][0]["command"] == ["certs", "scheduler"]
    worker = _template("worker-deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"] == ["certs", "worker"]


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_as_the_owner_role() -> None:
    job = _template("migration-job.yaml")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["certs", "db", "upgrade"]
    text = (CHART / "templates" / "migration-job.yaml").read_text()
    assert '"MIGRATION_DATABASE_URL"' in text
    secret = _template("migration-secret.yaml")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    # The owner role's URL never reaches the long-running pods.
    assert "MIGRATION_DATABASE_URL" not in (CHART / "templates" / "secret.yaml").read_text()
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "MIGRATION_DATABASE_URL" not in helpers


def test_every_spec_setting_reaches_the_pods() -> None:
    config = _template("configmap.yaml")["data"]
    secret = _template("secret.yaml")["stringData"]
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for name in SPEC_8A:
        assert name in config or (name in secret and f'"{name}"' in helpers), name
    assert "existingSecret" in helpers


def test_autoscalers_and_disruption_budgets_exist() -> None:
    for name in ("api-hpa.yaml", "worker-hpa.yaml", "api-pdb.yaml", "worker-pdb.yaml"):
        assert (CHART / "templates" / name).exists(), name
    assert _template("worker-hpa.yaml")["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    keda = _template("worker-keda.yaml")
    assert keda["spec"]["triggers"][0]["type"] == "redis"


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm is not installed here")
def test_helm_lint_and_template() -> None:
    values = [
        "--set",
        "secrets.databaseUrl=postgresql://app@db/certs,secrets.redisUrl=redis://redis:6379/0,"
        "secrets.jwtSecretKey=0123456789abcdef0123456789abcdef",
        "--set",
        "api.ingress.enabled=true,worker.keda.enabled=true",
    ]
    subprocess.run(["helm", "lint", str(CHART), *values], check=True)
    out = subprocess.run(
        ["helm", "template", "rel", str(CHART), *values], check=True, capture_output=True, text=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {(d["apiVersion"], d["kind"]) for d in docs} <= KNOWN_KINDS
    assert len(docs) >= 12


# --- Rendered for real by a small Go-template evaluator (tests/deploy/gotemplate.py) -----------

BASE = {
    "secrets": {
        "databaseUrl": "postgresql://app@db/certs",
        "redisUrl": "redis://r:6379/0",
        "jwtSecretKey": "k" * 40,
    }
}
FULL = {
    "secrets": {"existingSecret": "certs-credentials"},
    "serviceAccount": {"create": False, "name": "certs-sa"},
    "api": {"ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t"}]}},
    "worker": {"keda": {"enabled": True}},
    "config": {"extraEnv": {"FEATURE_X": "on"}},
    "imagePullSecrets": [{"name": "regcred"}],
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _render(override: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from tests.deploy.gotemplate import render_chart

    rendered = render_chart(CHART, _merge(VALUES, override))
    objects = {}
    for name, text in rendered.items():
        if not name.endswith(".yaml"):
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert len(docs) <= 1, name
        if docs:
            objects[name] = docs[0]
    return objects


@pytest.mark.parametrize("override", [BASE, FULL], ids=["defaults", "everything-on"])
def test_rendered_manifests_are_valid_objects(override: dict[str, Any]) -> None:
    objects = _render(override)
    for name, obj in objects.items():
        assert (obj["apiVersion"], obj["kind"]) in KNOWN_KINDS, name
        assert obj["metadata"]["name"].startswith("rel-certs"), name
        assert len(obj["metadata"]["name"]) <= 63
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"
    for name in ("api-deployment.yaml", "worker-deployment.yaml", "scheduler-deployment.yaml"):
        spec = objects[name]["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        ), name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", VALUES["metrics"]["multiprocDir"]} <= mounts
        env = {e["name"]: e for e in container["env"]}
        assert "MIGRATION_DATABASE_URL" not in env, "the owner role stays with the migration"
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] in (
            "rel-certs",
            "certs-credentials",
        )
        assert container["envFrom"][0]["configMapRef"]["name"] == "rel-certs-config"


def test_defaults_create_secret_hpas_and_no_ingress() -> None:
    objects = _render(BASE)
    assert objects["secret.yaml"]["stringData"]["DATABASE_URL"] == "postgresql://app@db/certs"
    assert "ingress.yaml" not in objects
    assert "worker-keda.yaml" not in objects
    assert objects["worker-hpa.yaml"]["spec"]["scaleTargetRef"]["name"] == "rel-certs-worker"
    assert "replicas" not in objects["api-deployment.yaml"]["spec"], "the HPA owns replicas"
    job = objects["migration-job.yaml"]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-certs-migrate",
        "key": "MIGRATION_DATABASE_URL",
        "optional": False,
    }
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    migrate_secret = objects["migration-secret.yaml"]["stringData"]
    assert migrate_secret["MIGRATION_DATABASE_URL"] == "postgresql://app@db/certs"


def test_existing_secret_ingress_and_keda() -> None:
    objects = _render(FULL)
    assert "secret.yaml" not in objects
    assert "migration-secret.yaml" not in objects
    assert "worker-hpa.yaml" not in objects, "KEDA owns the worker HPA"
    assert "serviceaccount.yaml" not in objects
    keda = objects["worker-keda.yaml"]["spec"]["triggers"][0]["metadata"]
    assert keda["listName"] == "certs:default"
    ingress = objects["ingress.yaml"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    path = ingress["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/api"
    assert path["backend"]["service"] == {"name": "rel-certs-api", "port": {"number": 80}}
    job = objects["migration-job.yaml"]["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == "certs-sa"
    assert job["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e for e in job["containers"][0]["env"]}
    assert env["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "certs-credentials"
    assert objects["configmap.yaml"]["data"]["FEATURE_X"] == "on"
    assert "replicas" not in objects["worker-deployment.yaml"]["spec"]


def test_a_missing_database_url_fails_the_render() -> None:
    from tests.deploy.gotemplate import TemplateError

    with pytest.raises(TemplateError, match="databaseUrl"):
        _render({})
    no_key = {"secrets": {**BASE["secrets"], "jwtSecretKey": ""}}
    with pytest.raises(TemplateError, match="jwtSecretKey"):
        _render(no_key)
    rs256 = _render(_merge(no_key, {"config": {"jwtAlgorithm": "RS256"}}))
    assert rs256["secret.yaml"]["stringData"]["JWT_SECRET_KEY"] == ""
