"""The Helm chart, checked by the real `helm` and by the Kubernetes API schemas.

`helm` (v3.17.3, pinned and checksummed by `.ci/install-helm`) lints the chart and renders it
under several value sets; `helm/values.schema.json` makes it refuse unknown or mistyped values.
Every rendered object is validated by kubernetes-validate in strict mode (an unknown field is an
error) against the oldest and the newest Kubernetes it has schemas for, then the objects are
checked for what the service needs: SPEC §8a settings in every process, probes, security
contexts, secret wiring, hooks, autoscalers.

helm is taken from $HELM, else `.tools/bin/helm` (what `.ci/install-helm` installs), else PATH.
Without helm or kubernetes-validate the tests that need them skip locally, and fail when $CI is
set: CI cannot go green without having checked the chart.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
RELEASE = "rel"
FULLNAME = "rel-certs"

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
# kubernetes-validate knows the built-in API only. KEDA's ScaledObject is a CRD it has no schema
# for: it is skipped there and checked field by field in test_keda_scales_workers_on_queue_depth.
NO_KUBERNETES_SCHEMA = {("keda.sh/v1alpha1", "ScaledObject")}
# The oldest and newest Kubernetes that kubernetes-validate 1.37.0 has schemas for.
KUBERNETES_VERSIONS = ("1.25", "1.37")
SPEC_8A = (
    "DATABASE_URL REDIS_URL CERTS_ENV JWT_SECRET_KEY JWT_ALGORITHM JWT_PUBLIC_KEY JWT_PRIVATE_KEY "
    "SMTP_HOST SMTP_PORT SMTP_USERNAME SMTP_PASSWORD SMTP_STARTTLS MAIL_FROM LOG_LEVEL"
).split()
LONG_RUNNING = ("api", "worker", "scheduler")


# --- Finding helm and kubernetes-validate --------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _unavailable(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{reason}; CI is set, so the chart must be checked, not skipped")
    pytest.skip(reason)


def _helm_path() -> str | None:
    explicit = os.environ.get("HELM")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            pytest.fail(f"HELM={explicit} is not an executable file")
        return explicit
    local = ROOT / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    path = _helm_path()
    if path is None:
        _unavailable("helm not found ($HELM, .tools/bin/helm or PATH); run .ci/install-helm")
    version = subprocess.run(
        [path, "version", "--template", "{{.Version}}"], capture_output=True, text=True
    )
    assert version.returncode == 0, f"{path} version: {version.stderr}"
    assert version.stdout.startswith("v3."), f"the chart targets helm 3, {path} is {version.stdout}"
    return path


@pytest.fixture(scope="session")
def kube_validate() -> Any:
    try:
        from kubernetes_validate import utils
    except ImportError:
        _unavailable("kubernetes-validate is not installed (pip install -e '.[dev]')")
    return utils


# --- Running helm ---------------------------------------------------------------------------------


def _run(
    helm: str, *args: str, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """`helm ARGS`, with `values` (if any) passed as a values file on stdin like `-f my.yaml`."""
    cmd = [helm, *args]
    if values is not None:
        cmd += ["--values", "-"]
    return subprocess.run(
        cmd,
        input=None if values is None else yaml.safe_dump(values),
        capture_output=True,
        text=True,
        timeout=120,
    )


class Manifests:
    """The objects of one `helm template` output, each with the template it came from."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[tuple[str, dict[str, Any]]] = []
        for chunk in re.split(r"^---\s*$", text, flags=re.M):
            obj = yaml.safe_load(chunk)
            if not obj:
                continue
            source = re.search(r"^# Source: certs/templates/(\S+)$", chunk, flags=re.M)
            assert source, f"no # Source comment before {obj.get('kind')}"
            self.items.append((source.group(1), obj))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (obj for _, obj in self.items)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self if obj["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) <= 1, f"{len(found)} {kind}s named {name}"
        return found[0] if found else None

    def get(self, kind: str, name: str) -> dict[str, Any]:
        obj = self.find(kind, name)
        assert obj is not None, f"no {kind} {name} in {sorted(self.names())}"
        return obj

    def names(self) -> set[tuple[str, str]]:
        return {(obj["kind"], obj["metadata"]["name"]) for obj in self}

    def sources(self) -> set[str]:
        return {source for source, _ in self.items}


def _template(helm: str, values: dict[str, Any], *args: str, release: str = RELEASE) -> Manifests:
    proc = _run(helm, "template", release, str(CHART), *args, values=values)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return Manifests(proc.stdout)


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = _pod(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(workload).get("env", [])}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- Value sets -----------------------------------------------------------------------------------

SECRETS = {
    "databaseUrl": "postgresql://certs_app:app-pw@postgres:5432/certs",
    "redisUrl": "redis://redis:6379/0",
    "jwtSecretKey": "k" * 40,
    "dbPlatformKeys": "platform-" + "p" * 40,
    "webhookSecretKeys": "w" * 43 + "=",
}
OWNER_URL = "postgresql://certs_owner:owner-pw@postgres:5432/certs"
# Characters YAML, Go's %q and shells treat specially, with a CRLF and non-ASCII text.
TRICKY = "p@ss \"dq\" 'sq' \\back\\slash: #hash {{ .Values }} $HOME %s\ttab\r\nline2 ü ☃"
TRICKY_ENV = 'yes: no # {{ x }} "q" \\ $PATH\nnext line\n'


@functools.cache
def _keys() -> tuple[str, str]:
    """A fresh RSA key pair as PEM (private, public): multi-line values, as real ones are."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@functools.cache
def _value_sets() -> dict[str, dict[str, Any]]:
    private_pem, public_pem = _keys()
    production = {
        "image": {"repository": "registry.example.com/team/certs", "tag": "1.4.2"},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"annotations": {"iam.example.com/role": "certs"}},
        "config": {
            "jwtAlgorithm": "RS256",
            "jwtPublicKey": public_pem,
            "smtp": {"host": "smtp.example.com", "port": 2525},
            "logLevel": "WARNING",
            "extraEnv": {
                "FEATURE_X": "on",
                "RETRIES": 3,
                "DRY_RUN": False,
                "ODD_VALUE": TRICKY_ENV,
            },
        },
        "secrets": {
            **SECRETS,
            "migrationDatabaseUrl": OWNER_URL,
            "jwtSecretKey": "",
            "jwtPrivateKey": private_pem,
            "smtpUsername": "mailer",
            "smtpPassword": TRICKY,
        },
        "api": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
                "hosts": ["certs.example.com", "*.certs.example.com"],
                "paths": ["/api", "/readyz"],
                "tls": [{"secretName": "certs-tls", "hosts": ["certs.example.com"]}],
            },
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
            "pdb": {"enabled": True, "maxUnavailable": "25%"},
            "podAnnotations": {"example.com/team": "certs"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "certs", "effect": "NoSchedule"}
            ],
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {
                                    "matchLabels": {"app.kubernetes.io/component": "api"}
                                },
                            },
                        }
                    ]
                }
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}},
                }
            ],
        },
        "worker": {
            "keda": {"enabled": True, "queues": ["default", "notifications"], "listLength": 20},
            "pdb": {"enabled": True},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        },
    }
    return {
        # The shipped defaults plus the three values they cannot default.
        "defaults": {"secrets": SECRETS},
        "production": production,
        # Credentials in a Secret the operator manages, an existing ServiceAccount.
        "existing-secret": {
            "secrets": {"existingSecret": "certs-credentials"},
            "serviceAccount": {"create": False, "name": "certs-sa"},
            "worker": {"keda": {"enabled": True}},
        },
        # The smallest footprint: no autoscalers, budgets, scheduler, hooks or chart Secret.
        "minimal": {
            "secrets": {"existingSecret": "certs-credentials"},
            "serviceAccount": {"create": False},
            "metrics": {"podAnnotations": False},
            "api": {"autoscaling": {"enabled": False}, "pdb": {"enabled": False}},
            "worker": {"autoscaling": {"enabled": False}, "pdb": {"enabled": False}},
            "scheduler": {"enabled": False},
            "migrations": {"enabled": False},
        },
    }


VALUE_SET_NAMES = ["defaults", "production", "existing-secret", "minimal"]


@functools.cache
def _rendered(helm: str, name: str) -> Manifests:
    return _template(helm, _value_sets()[name])


# --- values.yaml and values.schema.json (no helm needed) -----------------------------------------


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


def test_every_value_used_by_a_template_is_defined() -> None:
    # Read from the template source on purpose: helm renders a value missing from values.yaml
    # as an empty string (helm 3 has no strict mode for `template`), so no rendering shows it.
    text = "\n".join(p.read_text() for p in (CHART / "templates").iterdir())
    used = set(re.findall(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))
    assert len(used) > 50, "the templates reference (almost) no values?"
    missing = []
    for ref in sorted(used):
        node: Any = VALUES
        for part in ref.strip(".").split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(ref)
                break
            node = node[part]
    assert missing == []


def _schema_node(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


def _values_paths(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        yield prefix + key, value
        if isinstance(value, dict):
            yield from _values_paths(value, f"{prefix}{key}.")


def test_the_schema_describes_every_value_and_refuses_unknown_keys() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    problems = []
    for path, value in _values_paths(VALUES):
        node: dict[str, Any] = SCHEMA
        for part in path.split("."):
            node = _schema_node(node).get("properties", {}).get(part)
            if node is None:
                break
        if node is None:
            problems.append(f"{path}: not in the schema")
            continue
        if not node.get("description"):
            problems.append(f"{path}: no description")
        resolved = _schema_node(node)
        if isinstance(value, dict):
            # Either a closed object (a misspelt key fails) or a map with typed values.
            if resolved.get("additionalProperties", True) is True:
                problems.append(f"{path}: accepts any unknown key")
        if isinstance(value, bool):
            assert resolved.get("type") == "boolean", path
        elif isinstance(value, int):
            assert resolved.get("type") == "integer" or "oneOf" in resolved, path
    assert SCHEMA["additionalProperties"] is False
    assert problems == []


# Schema objects that are passed through to Kubernetes (toYaml), and the Kubernetes type whose
# fields they list: when kubernetes-validate moves to a Kubernetes with new fields, this fails
# and the schema gets them.
PASS_THROUGH = {
    "properties.securityContext": "io.k8s.api.core.v1.SecurityContext",
    "properties.securityContext.properties.capabilities": "io.k8s.api.core.v1.Capabilities",
    "properties.podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
    "properties.podSecurityContext.properties.seccompProfile": "io.k8s.api.core.v1.SeccompProfile",
    "properties.podSecurityContext.properties.sysctls.items": "io.k8s.api.core.v1.Sysctl",
    "properties.imagePullSecrets.items": "io.k8s.api.core.v1.LocalObjectReference",
    "properties.api.properties.ingress.properties.tls.items": "io.k8s.api.networking.v1.IngressTLS",
    "definitions.resources": "io.k8s.api.core.v1.ResourceRequirements",
    "definitions.resources.properties.claims.items": "io.k8s.api.core.v1.ResourceClaim",
    "definitions.tolerations.items": "io.k8s.api.core.v1.Toleration",
    "definitions.topologySpreadConstraints.items": "io.k8s.api.core.v1.TopologySpreadConstraint",
    "definitions.affinity": "io.k8s.api.core.v1.Affinity",
    "definitions.profile": "io.k8s.api.core.v1.SeccompProfile",
    "definitions.seLinuxOptions": "io.k8s.api.core.v1.SELinuxOptions",
    "definitions.windowsOptions": "io.k8s.api.core.v1.WindowsSecurityContextOptions",
}


def test_pass_through_objects_list_the_fields_of_their_kubernetes_type(kube_validate: Any) -> None:
    latest = kube_validate.latest_version()
    definitions = json.loads(
        importlib.resources.files("kubernetes_validate")
        .joinpath(f"kubernetes-json-schema/v{latest}-local-strict/_definitions.json")
        .read_text()
    )["$defs"]
    for path, kubernetes_type in PASS_THROUGH.items():
        node: Any = SCHEMA
        for part in path.split("."):
            node = node[part]
        assert node["additionalProperties"] is False, path
        assert set(node["properties"]) == set(definitions[kubernetes_type]["properties"]), path


# --- helm lint ------------------------------------------------------------------------------------


def test_helm_lint_the_chart_as_shipped(helm: str) -> None:
    # Without values `required` only logs in lint mode: the chart itself must still lint clean.
    for strict in ([], ["--strict"]):
        proc = _run(helm, "lint", *strict, str(CHART))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "[ERROR]" not in proc.stdout
        assert "[WARNING]" not in proc.stdout


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_helm_lint_strict(helm: str, name: str) -> None:
    proc = _run(helm, "lint", "--strict", str(CHART), values=_value_sets()[name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


# --- Rendered objects are valid Kubernetes objects ------------------------------------------------


def _validate(kube_validate: Any, manifests: Manifests) -> None:
    for source, obj in manifests.items:
        key = (obj["apiVersion"], obj["kind"])
        assert key in KNOWN_KINDS, f"{source}: unexpected {key}"
        if key in NO_KUBERNETES_SCHEMA:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kube_validate.validate(obj, version, strict=True)
            except kube_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                pytest.fail(f"{source} ({obj['kind']}) on Kubernetes {version}: {where}: {e}")


def _check_references(manifests: Manifests, values: dict[str, Any]) -> None:
    """Every name an object refers to is an object of the release (or one the operator owns)."""
    existing_secret = values["secrets"]["existingSecret"]
    for source, obj in manifests.items:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 63, f"{source}: {meta['name']} is longer than a DNS label"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE, source
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", source
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = _pod(obj)
        selector = obj["spec"].get("selector", {}).get("matchLabels", {})
        assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items(), source
        account = pod.get("serviceAccountName")
        if values["serviceAccount"]["create"] and obj["kind"] == "Deployment":
            assert manifests.find("ServiceAccount", account), source
        elif account is not None:
            assert account == (values["serviceAccount"]["name"] or "default"), source
        container = _container(obj)
        for ref in container.get("envFrom", []):
            manifests.get("ConfigMap", ref["configMapRef"]["name"])
        for env in container.get("env", []):
            if "valueFrom" not in env:
                continue
            ref = env["valueFrom"]["secretKeyRef"]
            if existing_secret:
                assert ref["name"] == existing_secret, f"{source}: {env['name']}"
            else:
                secret = manifests.get("Secret", ref["name"])
                assert ref["key"] in secret["stringData"], f"{source}: {env['name']}"
        mounts = {m["name"] for m in container["volumeMounts"]}
        assert mounts <= {v["name"] for v in pod["volumes"]}, source
    for obj in manifests.of_kind("HorizontalPodAutoscaler"):
        target = obj["spec"]["scaleTargetRef"]
        deployment = manifests.get(target["kind"], target["name"])
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        assert obj["spec"]["minReplicas"] <= obj["spec"]["maxReplicas"]
    for obj in manifests.of_kind("PodDisruptionBudget"):
        selector = obj["spec"]["selector"]["matchLabels"].items()
        matching = [
            d
            for d in manifests.of_kind("Deployment")
            if selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, obj["metadata"]["name"]


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_rendered_objects_are_valid_kubernetes_objects(
    helm: str, kube_validate: Any, name: str
) -> None:
    manifests = _rendered(helm, name)
    values = _merge(VALUES, _value_sets()[name])
    assert len(manifests.names()) == len(manifests.items), "two objects share a kind and name"
    _validate(kube_validate, manifests)
    _check_references(manifests, values)


def test_the_validator_rejects_what_kubernetes_would(helm: str, kube_validate: Any) -> None:
    """The validation above is strict for real: a misspelt or mistyped field is an error."""
    deployment = _rendered(helm, "defaults").get("Deployment", f"{FULLNAME}-api")
    misspelt = copy.deepcopy(deployment)
    _container(misspelt)["readinesProbe"] = _container(misspelt).pop("readinessProbe")
    mistyped = copy.deepcopy(deployment)
    mistyped["spec"]["revisionHistoryLimit"] = "5"
    for bad in (misspelt, mistyped):
        with pytest.raises(kube_validate.ValidationError):
            kube_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    ("args", "release"),
    [
        (["--set", "fullnameOverride=" + "f" * 63], RELEASE),
        ([], "r" * 53),  # the longest release name helm accepts
    ],
    ids=["fullnameOverride-63", "release-name-53"],
)
def test_long_names_still_fit_kubernetes_limits(
    helm: str, kube_validate: Any, args: list[str], release: str
) -> None:
    values = _value_sets()["production"]
    proc = _run(helm, "template", release, str(CHART), *args, values=values)
    assert proc.returncode == 0, proc.stderr
    manifests = Manifests(proc.stdout)
    _validate(kube_validate, manifests)
    names = {}
    for obj in manifests:
        name = obj["metadata"]["name"]
        # Services, Jobs (their name becomes a label value) and the rest: one DNS label.
        assert len(name) <= 63, name
        assert names.setdefault((obj["kind"], name), obj) is obj, f"two {obj['kind']}s {name}"
    for obj in manifests.of_kind("Deployment"):
        # Components stay distinct: the release part is shortened, never the suffix.
        component = obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        assert obj["metadata"]["name"].endswith("-" + component)
    lint = _run(helm, "lint", "--strict", str(CHART), *args, values=values)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# --- values.schema.json makes helm refuse typos ---------------------------------------------------


@pytest.mark.parametrize(
    ("override", "offender"),
    [
        ({"replicaCount": 3}, "replicaCount"),  # belongs under api or worker
        ({"api": {"replicaCont": 3}}, "replicaCont"),
        ({"api": {"ingress": {"enable": True}}}, "enable"),
        ({"worker": {"keda": {"enabeld": True}}}, "enabeld"),
        ({"config": {"smtp": {"startTls": True}}}, "startTls"),
        ({"securityContext": {"readOnlyRootFilesytem": True}}, "readOnlyRootFilesytem"),
        ({"api": {"resources": {"limit": {"cpu": "2"}}}}, "limit"),
        ({"api": {"tolerations": [{"keys": "dedicated"}]}}, "keys"),
        ({"api": {"replicaCount": "two"}}, "api.replicaCount"),
        ({"image": {"tag": 2}}, "image.tag"),  # a number would render as "certs:%!s(int64=2)"
        ({"config": {"jwtAlgorithm": "RS512"}}, "config.jwtAlgorithm"),
        ({"api": {"pdb": {"maxUnavailable": "a quarter"}}}, "api.pdb.maxUnavailable"),
        ({"config": {"jwtAlgorithm": "RS256"}}, "config.jwtPublicKey"),  # RS256 needs the key
        ({"config": {"rateLimits": {"perOrg": "lots"}}}, "config.rateLimits.perOrg"),
        ({"config": {"rateLimits": {"perMinute": "60/minute"}}}, "perMinute"),
    ],
)
def test_a_misspelt_or_invalid_value_fails_lint_and_template(
    helm: str, override: dict[str, Any], offender: str
) -> None:
    values = _merge({"secrets": SECRETS}, override)
    for args in (["template", RELEASE, str(CHART)], ["lint", str(CHART)]):
        proc = _run(helm, *args, values=values)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"helm {args[0]} accepted {override}"
        assert "don't meet the specifications of the schema" in output, output
        assert offender in output, output


# --- What the service needs, read from the rendered objects ---------------------------------------


def test_pem_keys_and_values_needing_escapes_survive_rendering_exactly(helm: str) -> None:
    from cryptography.hazmat.primitives import serialization

    private_pem, public_pem = _keys()
    manifests = _rendered(helm, "production")
    config = manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]
    secret = manifests.get("Secret", FULLNAME)["stringData"]
    migrate = _env(manifests.get("Job", f"{FULLNAME}-migrate"))
    # Newlines stay newlines (not spaces, not literal backslash-n), byte for byte.
    assert config["JWT_PUBLIC_KEY"] == public_pem
    assert migrate["JWT_PUBLIC_KEY"]["value"] == public_pem
    assert secret["JWT_PRIVATE_KEY"] == private_pem
    assert public_pem.count("\n") > 5
    serialization.load_pem_public_key(config["JWT_PUBLIC_KEY"].encode())
    serialization.load_pem_private_key(secret["JWT_PRIVATE_KEY"].encode(), password=None)
    assert secret["SMTP_PASSWORD"] == TRICKY
    assert config["ODD_VALUE"] == TRICKY_ENV
    # Every ConfigMap value is a string, whatever YAML type the value had.
    assert (config["RETRIES"], config["DRY_RUN"], config["FEATURE_X"]) == ("3", "false", "on")
    assert config["SMTP_PORT"] == "2525"
    assert all(isinstance(v, str) for v in config.values())


def test_rate_limits_reach_the_api_as_settings_it_accepts(helm: str) -> None:
    from infra.settings import load_settings

    limits = {"enabled": False, "perSubject": "10 per second", "perOrg": "5/second;900/hour",
              "heavy": "2/minute"}  # fmt: skip
    manifests = _template(helm, {"secrets": SECRETS, "config": {"rateLimits": limits}})
    data = manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]
    names = (
        "RATE_LIMIT_ENABLED",
        "RATE_LIMIT_PER_SUBJECT",
        "RATE_LIMIT_PER_ORG",
        "RATE_LIMIT_HEAVY",
    )
    assert [data[n] for n in names] == ["false", "10 per second", "5/second;900/hour", "2/minute"]
    settings = load_settings({n: data[n] for n in names})
    assert settings.rate_limit_enabled is False
    assert (settings.rate_limit_per_org, settings.rate_limit_heavy) == (
        "5/second;900/hour",
        "2/minute",
    )
    shipped = _rendered(helm, "production").get("ConfigMap", f"{FULLNAME}-config")["data"]
    defaults = load_settings({})
    assert [shipped[n] for n in names[1:]] == [
        defaults.rate_limit_per_subject, defaults.rate_limit_per_org, defaults.rate_limit_heavy
    ]  # fmt: skip


def test_a_pem_key_passed_with_set_file_survives_rendering(helm: str, tmp_path: Path) -> None:
    # The README's way: --set-file config.jwtPublicKey=idp-public.pem.
    _, public_pem = _keys()
    pem = tmp_path / "idp-public.pem"
    pem.write_text(public_pem)
    manifests = _template(
        helm,
        {"secrets": SECRETS},
        "--set",
        "config.jwtAlgorithm=RS256",
        "--set-file",
        f"config.jwtPublicKey={pem}",
    )
    assert manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]["JWT_PUBLIC_KEY"] == public_pem


def test_large_integers_render_as_integers(helm: str, kube_validate: Any) -> None:
    """A values file's numbers reach the templates as floats: 1234567 must not become 1.234567e+06
    (CERTS int() parsing and Kubernetes int32 fields both refuse that)."""
    big = 1234567
    override: dict[str, Any] = {"secrets": SECRETS}
    changed = []
    for path, value in _values_paths(VALUES):
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        node: dict[str, Any] = SCHEMA
        for part in path.split("."):
            node = _schema_node(node)["properties"][part]
        if _schema_node(node).get("maximum", big) < big:
            continue  # ports
        changed.append(path)
        leaf = override
        *parents, last = path.split(".")
        for part in parents:
            leaf = leaf.setdefault(part, {})
        leaf[last] = big
    assert "config.statementTimeoutMs" in changed
    override["config"]["extraEnv"] = {"BIG": big, "HALF": 0.5}
    for keda in (False, True):
        manifests = _template(helm, _merge(override, {"worker": {"keda": {"enabled": keda}}}))
        assert not re.search(r"\de\+\d", manifests.text), "a number rendered in float notation"
        _validate(kube_validate, manifests)
    config = manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]
    assert config["DB_STATEMENT_TIMEOUT_MS"] == str(big)
    assert (config["BIG"], config["HALF"]) == (str(big), "0.5")
    api = _env(manifests.get("Deployment", f"{FULLNAME}-api"))
    assert api["GUNICORN_TIMEOUT"]["value"] == str(big)


def test_every_spec_setting_reaches_every_long_running_process(helm: str) -> None:
    for name in VALUE_SET_NAMES:
        manifests = _rendered(helm, name)
        for component in LONG_RUNNING:
            deployment = manifests.find("Deployment", f"{FULLNAME}-{component}")
            if deployment is None:
                assert (component, name) == ("scheduler", "minimal")
                continue
            settings = set(_env(deployment))
            for ref in _container(deployment)["envFrom"]:
                settings |= set(manifests.get("ConfigMap", ref["configMapRef"]["name"])["data"])
            missing = sorted(set(SPEC_8A) - settings)
            assert missing == [], f"{name}: {component} lacks {missing}"
            env = _env(deployment)
            assert "MIGRATION_DATABASE_URL" not in env, "the owner role stays with the migration"
            for key in (
                "DATABASE_URL",
                "REDIS_URL",
                "JWT_SECRET_KEY",
                "DB_PLATFORM_KEYS",
                "WEBHOOK_SECRET_KEYS",
                "SMTP_PASSWORD",
            ):
                assert "secretKeyRef" in env[key]["valueFrom"], f"{key} comes from a Secret"


def test_the_owner_role_and_secrets_stay_out_of_other_objects(helm: str) -> None:
    manifests = _rendered(helm, "production")
    secret_values = [
        OWNER_URL,
        SECRETS["databaseUrl"],
        SECRETS["dbPlatformKeys"],
        SECRETS["webhookSecretKeys"],
        _keys()[0],
        TRICKY,
    ]
    for source, obj in manifests.items:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for value in secret_values:
            assert json.dumps(value)[1:-1] not in text, f"{source} carries a secret value"
    owner_holders = [
        obj["metadata"]["name"]
        for obj in manifests.of_kind("Secret")
        if OWNER_URL in obj["stringData"].values()
    ]
    assert owner_holders == [f"{FULLNAME}-migrate"]
    assert "MIGRATION_DATABASE_URL" not in manifests.get("Secret", FULLNAME)["stringData"]


def test_workloads_run_as_non_root_on_a_read_only_filesystem(helm: str) -> None:
    for name in VALUE_SET_NAMES:
        manifests = _rendered(helm, name)
        workloads = manifests.of_kind("Deployment") + manifests.of_kind("Job")
        assert len(workloads) >= 2
        for obj in workloads:
            pod, container = _pod(obj), _container(obj)
            where = f"{name}: {obj['metadata']['name']}"
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            sec = container["securityContext"]
            assert sec["readOnlyRootFilesystem"] is True, where
            assert sec["allowPrivilegeEscalation"] is False, where
            assert sec["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", VALUES["metrics"]["multiprocDir"]} <= mounts, where
            assert all("emptyDir" in v for v in pod["volumes"]), where
            assert container["resources"]["limits"]["memory"], where


def test_processes_probes_and_the_single_scheduler(helm: str) -> None:
    manifests = _rendered(helm, "defaults")
    api = manifests.get("Deployment", f"{FULLNAME}-api")
    container = _container(api)
    assert container["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {p["name"] for p in container["ports"]} == {"http"}
    assert _env(api)["GUNICORN_BIND"]["value"] == "0.0.0.0:8000"
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8000"
    scheduler = manifests.get("Deployment", f"{FULLNAME}-scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}
    assert _container(scheduler)["command"] == ["certs", "scheduler"]
    worker = manifests.get("Deployment", f"{FULLNAME}-worker")
    assert _container(worker)["command"] == ["certs", "worker"]
    assert _container(worker)["args"] == ["--processes", "2", "--threads", "4"]
    assert _container(worker)["livenessProbe"]["tcpSocket"] == {"port": "metrics"}
    assert _env(worker)["WORKER_METRICS_PORT"]["value"] == "9191"
    service = manifests.get("Service", f"{FULLNAME}-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert manifests.find("Ingress", FULLNAME) is None


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook_as_the_owner_role(helm: str) -> None:
    manifests = _rendered(helm, "defaults")
    job = manifests.get("Job", f"{FULLNAME}-migrate")
    secret = manifests.get("Secret", f"{FULLNAME}-migrate")
    for hook in (job, secret):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    # The hook Secret exists before the Job that reads it.
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert _container(job)["command"] == ["certs", "db", "upgrade"]
    assert _pod(job)["restartPolicy"] == "Never"
    assert "serviceAccountName" not in _pod(job), "a pre-install hook runs before the chart's SA"
    env = _env(job)
    assert env["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-migrate",
        "key": "MIGRATION_DATABASE_URL",
        "optional": False,
    }
    # Without a separate owner URL the migration runs with DATABASE_URL's role.
    assert secret["stringData"]["MIGRATION_DATABASE_URL"] == SECRETS["databaseUrl"]
    production = _rendered(helm, "production").get("Secret", f"{FULLNAME}-migrate")
    assert production["stringData"]["MIGRATION_DATABASE_URL"] == OWNER_URL
    # It stores the platform keys' digests, and production settings need the webhook keys.
    for key, value in (
        ("DB_PLATFORM_KEYS", "dbPlatformKeys"),
        ("WEBHOOK_SECRET_KEYS", "webhookSecretKeys"),
    ):
        assert env[key]["valueFrom"]["secretKeyRef"]["key"] == key
        assert secret["stringData"][key] == SECRETS[value]


def test_existing_secret_and_service_account(helm: str) -> None:
    manifests = _rendered(helm, "existing-secret")
    assert manifests.of_kind("Secret") == []
    assert manifests.of_kind("ServiceAccount") == []
    for component in LONG_RUNNING:
        deployment = manifests.get("Deployment", f"{FULLNAME}-{component}")
        assert _pod(deployment)["serviceAccountName"] == "certs-sa"
    job = manifests.get("Job", f"{FULLNAME}-migrate")
    assert _pod(job)["serviceAccountName"] == "certs-sa"
    ref = _env(job)["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["optional"]) == ("certs-credentials", False)


def test_defaults_autoscale_and_budget_both_deployments(helm: str) -> None:
    manifests = _rendered(helm, "defaults")
    for component in ("api", "worker"):
        hpa = manifests.get("HorizontalPodAutoscaler", f"{FULLNAME}-{component}")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"{FULLNAME}-{component}",
        }
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        manifests.get("PodDisruptionBudget", f"{FULLNAME}-{component}")
    assert manifests.of_kind("ScaledObject") == []
    assert manifests.get("Secret", FULLNAME)["stringData"]["DATABASE_URL"] == SECRETS["databaseUrl"]


def test_minimal_runs_fixed_replicas_and_nothing_optional(helm: str) -> None:
    manifests = _rendered(helm, "minimal")
    assert {kind for kind, _ in manifests.names()} == {"Deployment", "Service", "ConfigMap"}
    for component in ("api", "worker"):
        deployment = manifests.get("Deployment", f"{FULLNAME}-{component}")
        assert deployment["spec"]["replicas"] == VALUES[component]["replicaCount"]
        assert _pod(deployment)["serviceAccountName"] == "default"
        assert "prometheus.io/scrape" not in deployment["spec"]["template"]["metadata"].get(
            "annotations", {}
        )


def test_keda_scales_workers_on_queue_depth(helm: str) -> None:
    manifests = _rendered(helm, "production")
    assert manifests.find("HorizontalPodAutoscaler", f"{FULLNAME}-worker") is None, (
        "KEDA owns the worker HPA"
    )
    assert "replicas" not in manifests.get("Deployment", f"{FULLNAME}-worker")["spec"]
    (scaled,) = manifests.of_kind("ScaledObject")
    spec = scaled["spec"]
    # No schema for this CRD in kubernetes-validate: its fields are checked here.
    assert set(spec) <= {
        "scaleTargetRef",
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "idleReplicaCount",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
    assert spec["scaleTargetRef"] == {"name": f"{FULLNAME}-worker"}
    manifests.get("Deployment", spec["scaleTargetRef"]["name"])
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert isinstance(spec["cooldownPeriod"], int)
    triggers = spec["triggers"]
    assert [t["type"] for t in triggers] == ["redis", "redis"]
    assert [t["metadata"]["listName"] for t in triggers] == [
        "certs:default",
        "certs:notifications",
    ]
    for trigger in triggers:
        assert set(trigger) == {"type", "metadata"}
        # KEDA trigger metadata is a map of strings.
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger
        assert trigger["metadata"]["listLength"] == "20"
        assert trigger["metadata"]["address"] == VALUES["worker"]["keda"]["address"]


def test_ingress_routes_to_the_api_service(helm: str) -> None:
    manifests = _rendered(helm, "production")
    ingress = manifests.get("Ingress", FULLNAME)["spec"]
    service = manifests.get("Service", f"{FULLNAME}-api")
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "certs-tls", "hosts": ["certs.example.com"]}]
    assert [r["host"] for r in ingress["rules"]] == ["certs.example.com", "*.certs.example.com"]
    for rule in ingress["rules"]:
        assert [p["path"] for p in rule["http"]["paths"]] == ["/api", "/readyz"]
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {
                "name": service["metadata"]["name"],
                "port": {"number": service["spec"]["ports"][0]["port"]},
            }


def test_ingress_passes_bodies_up_to_the_apis_own_limit(helm: str) -> None:
    """nginx refuses bodies over 1 MB by default, below MAX_REQUEST_BYTES (bulk imports): the
    Ingress carries the API's limit unless the values set the annotation themselves."""
    ingress = {"enabled": True, "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}
    manifests = _template(helm, {"secrets": SECRETS, "api": {"ingress": ingress}})
    annotations = manifests.get("Ingress", FULLNAME)["metadata"]["annotations"]
    # Uploads (DOCUMENT_MAX_BYTES 20 MiB + 256 KiB of form) are the largest bodies.
    assert annotations == {
        "cert-manager.io/cluster-issuer": "letsencrypt",
        "nginx.ingress.kubernetes.io/proxy-body-size": str(20 * 1024 * 1024 + 262144),
    }
    small = {"documents": {"maxBytes": 1048576}}
    manifests = _template(helm, {"secrets": SECRETS, "api": {"ingress": ingress}, "config": small})
    annotations = manifests.get("Ingress", FULLNAME)["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "10485760"
    data = manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]
    assert (data["DOCUMENT_STORAGE"], data["DOCUMENT_MAX_BYTES"]) == ("local", "1048576")
    assert manifests.get("ConfigMap", f"{FULLNAME}-config")["data"]["MAX_REQUEST_BYTES"] == (
        "10485760"
    )
    by_hand = _rendered(helm, "production").get("Ingress", FULLNAME)["metadata"]["annotations"]
    assert by_hand["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"


def test_pods_roll_when_configuration_or_secret_change(helm: str) -> None:
    def checksums(override: dict[str, Any]) -> dict[str, dict[str, str]]:
        manifests = _template(helm, _merge({"secrets": SECRETS}, override))
        out = {}
        for component in LONG_RUNNING:
            deployment = manifests.get("Deployment", f"{FULLNAME}-{component}")
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            out[component] = {k: v for k, v in annotations.items() if k.startswith("checksum/")}
        return out

    base = checksums({})
    config = checksums({"config": {"logLevel": "DEBUG"}})
    secret = checksums({"secrets": {"redisUrl": "redis://other:6379/0"}})
    for component in LONG_RUNNING:
        assert config[component]["checksum/config"] != base[component]["checksum/config"]
        assert config[component]["checksum/secret"] == base[component]["checksum/secret"]
        assert secret[component]["checksum/secret"] != base[component]["checksum/secret"]


def test_missing_credentials_fail_the_render(helm: str) -> None:
    def render_error(values: dict[str, Any]) -> str:
        proc = _run(helm, "template", RELEASE, str(CHART), values=values)
        assert proc.returncode != 0
        return proc.stderr

    assert "secrets.databaseUrl (or secrets.existingSecret) is required" in render_error({})
    no_key = {"secrets": {**SECRETS, "jwtSecretKey": ""}}
    assert "secrets.jwtSecretKey is required with HS256" in render_error(no_key)
    for value in ("dbPlatformKeys", "webhookSecretKeys"):
        missing = {"secrets": {**SECRETS, value: ""}}
        assert f"secrets.{value} is required" in render_error(missing)
    _, public_pem = _keys()
    rs256 = _template(
        helm, _merge(no_key, {"config": {"jwtAlgorithm": "RS256", "jwtPublicKey": public_pem}})
    )
    assert rs256.get("Secret", FULLNAME)["stringData"]["JWT_SECRET_KEY"] == ""
