"""Kubernetes serving: one Deployment and one Service per version, predict over HTTP.

Per version ``V`` (the platform's version id) in the environment's namespace:

- Deployment ``zoo-V``: one replica of the truss model server (port 8080, readiness on
  truss's ``/v1/models/model``), labels ``zoo-ops/version``, ``zoo-ops/model`` and
  ``zoo-ops/truss-hash`` (the hash's first 32 hex digits: label values stop at 63
  characters; the full hash is the ``zoo-ops/truss-hash`` annotation), container
  requests = limits from the truss's ``resources`` (``nvidia.com/gpu`` for GPUs), a
  node selector on the accelerator label for a typed GPU and a toleration of GKE's
  ``nvidia.com/gpu`` taint, and the admin organization's Secret mounted read-only at
  ``/secrets`` (where truss's server reads secrets) when the truss declares any.
- Service ``zoo-V``: port 80 to the pods' 8080.

Ready means the Deployment's status says so: ``observedGeneration`` caught up,
``readyReplicas`` >= ``replicas`` and condition ``Available=True``; ``Progressing=False``
(e.g. ProgressDeadlineExceeded) fails at once. A timeout names what the pods wait for
(the scheduler's "0/N nodes are available: ..." message, a container's waiting reason).

The container image is the one the platform's truss builder publishes for the truss:
the environment's ``image`` template (fields {truss_name}, {truss_hash},
{truss_hash_short}), pulled with the ``image_pull_secrets`` the pod spec names; building
images is the platform's part, not this tool's.

Predict URLs are configuration per version kind (:mod:`zoo_ops.domain.url_templates`): a
truss version through ``predict_url_template``, a legacy version (no truss hash, served
by the platform) through ``legacy_predict_url_template``; with no legacy template a
legacy version cannot be reached and :meth:`KubernetesServing.endpoint_problem` says so
before anything is changed.

Retiring (:meth:`KubernetesServing.retire`) removes only what this adapter made: the
Deployment and Service of an artifact ``kubernetes:<namespace>/zoo-<id>`` when zoo-ops is
the automation. Any other version (legacy, or deployed by the platform's automation) is
served by the platform: nothing is deleted, and the result says what was left.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.adapters.kube_client import LazyClient, call_api, watch_objects
from zoo_ops.adapters.polling import wait_watching
from zoo_ops.adapters.serving import Removal
from zoo_ops.domain.capacity import GPU_RESOURCE, node_label_for_accelerator
from zoo_ops.domain.url_templates import (
    IMAGE_FIELDS,
    LEGACY_URL_FIELDS,
    TRUSS_URL_FIELDS,
    artifact_path,
    fill,
    template_problem,
)
from zoo_ops.errors import ConfigError, StepFailed, ZooOpsError

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.store import OracleVersion
    from zoo_ops.domain.truss_config import TrussConfig

ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
VERSION_LABEL = "zoo-ops/version"
MODEL_LABEL = "zoo-ops/model"
HASH_LABEL = "zoo-ops/truss-hash"
HASH_ANNOTATION = "zoo-ops/truss-hash"
TRUSS_ANNOTATION = "zoo-ops/truss-name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "zoo-ops"}
SERVER_PORT = 8080
SERVICE_PORT = 80
SECRETS_MOUNT = "/secrets"
DEFAULT_IMAGE_TEMPLATE = "truss-models/{truss_name}:{truss_hash_short}"
ARTIFACT_KIND = "kubernetes"
NAME_PREFIX = "zoo-"
PREDICT_TIMEOUT_S = 120.0
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def object_name(version_id: str) -> str:
    """The Deployment's and Service's name for a version (ids are [a-z0-9], letter first)."""
    return f"{NAME_PREFIX}{version_id}"


def label_value(text: str) -> str:
    """``text`` as a valid label value: [A-Za-z0-9._-], at most 63, alphanumeric ends."""
    cleaned = _LABEL_VALUE_BAD.sub("-", text)[:63]
    return cleaned.strip("-_.")


def deployment_manifest(
    *,
    version_id: str,
    namespace: str,
    truss_config: TrussConfig,
    model: str,
    truss_hash: str,
    truss_name: str,
    image: str,
    secret_name: str,
    image_pull_secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Deployment for one version (see the module docstring for what is in it)."""
    name = object_name(version_id)
    labels = {
        VERSION_LABEL: version_id,
        MODEL_LABEL: label_value(model or truss_name),
        HASH_LABEL: truss_hash[:32],
        **MANAGED_BY,
    }
    resources = truss_config.to_kubernetes_resources()
    container: dict[str, Any] = {
        "name": "truss",
        "image": image,
        "ports": [{"name": "http", "containerPort": SERVER_PORT}],
        "resources": resources,
        "readinessProbe": {
            "httpGet": {"path": "/v1/models/model", "port": SERVER_PORT},
            "periodSeconds": 5,
        },
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in image_pull_secrets]
    accelerator = truss_config.resources.accelerator
    if accelerator is not None:
        if accelerator.type:
            pod_spec["nodeSelector"] = {
                ACCELERATOR_LABEL: node_label_for_accelerator(accelerator.type)
            }
        pod_spec["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    if truss_config.secrets:
        pod_spec["volumes"] = [
            {"name": "secrets", "secret": {"secretName": secret_name, "optional": True}}
        ]
        container["volumeMounts"] = [
            {"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}
        ]
    annotations = {HASH_ANNOTATION: truss_hash, TRUSS_ANNOTATION: truss_name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {VERSION_LABEL: version_id}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def service_manifest(*, version_id: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The Service in front of a version's pods: port 80 to the server's 8080."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": object_name(version_id), "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {VERSION_LABEL: version_id},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVER_PORT}],
        },
    }


def readiness(deployment: Any) -> tuple[bool, str]:
    """(ready, failure) from a Deployment as the API returns it.

    Ready: observedGeneration >= generation, readyReplicas >= replicas, Available=True.
    ``failure`` is non-empty when Progressing=False: the rollout will not finish.
    """
    status = deployment.status
    if status is None:
        return False, ""
    conditions = {c.type: c for c in (status.conditions or [])}
    progressing = conditions.get("Progressing")
    if progressing is not None and progressing.status == "False":
        return False, f"{progressing.reason or 'not progressing'}: {progressing.message or ''}"
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    generation = deployment.metadata.generation or 0
    available = conditions.get("Available")
    ready = (
        (status.observed_generation or 0) >= generation
        and (status.ready_replicas or 0) >= wanted
        and available is not None
        and available.status == "True"
    )
    return ready, ""


def pod_problems(pods: list[Any]) -> str:
    """What the pods wait for: unscheduled conditions, containers' waiting reasons."""
    problems: list[str] = []
    for pod in pods:
        status = pod.status
        for cond in (status.conditions if status else None) or []:
            if cond.status == "False" and cond.message:
                problems.append(f"{pod.metadata.name} {cond.type}: {cond.message}")
        for cs in (status.container_statuses if status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason:
                problems.append(f"{pod.metadata.name} {waiting.reason}: {waiting.message or ''}")
    return "; ".join(" ".join(p.split()) for p in problems[:3])


class KubernetesServing:
    """The :class:`~zoo_ops.adapters.serving.Serving` of a ``serving = "kubernetes"`` env."""

    def __init__(
        self,
        *,
        namespace: str,
        predict_url_template: str,
        context: str = "",
        secret_name: str = "",
        image_template: str = DEFAULT_IMAGE_TEMPLATE,
        image_pull_secrets: tuple[str, ...] = (),
        legacy_predict_url_template: str = "",
        manages_versions: bool = True,
        poll_interval_s: float = 0.5,
        predict_timeout_s: float = PREDICT_TIMEOUT_S,
        extra_annotations: Mapping[str, str] | None = None,
        api_client_: Any = None,
    ) -> None:
        self.namespace = namespace
        self.context = context
        self.predict_url_template = predict_url_template
        self.secret_name = secret_name
        self.image_template = image_template
        self.image_pull_secrets = tuple(image_pull_secrets)
        self.legacy_predict_url_template = legacy_predict_url_template
        # True when zoo-ops is the automation (it made the Deployments it may delete).
        self.manages_versions = manages_versions
        for key, template, allowed in (
            ("image", image_template, IMAGE_FIELDS),
            ("predict_url_template", predict_url_template, TRUSS_URL_FIELDS),
            ("legacy_predict_url_template", legacy_predict_url_template, LEGACY_URL_FIELDS),
        ):
            problem = template_problem(template, allowed)
            if problem:
                raise ConfigError(f"{key} = {problem}; fix it in zoo_ops.toml")
        self.poll_interval_s = poll_interval_s
        self.predict_timeout_s = predict_timeout_s
        # Added to every Deployment's annotations (platform conventions, test hooks).
        self.extra_annotations = dict(extra_annotations or {})
        self._client = LazyClient(context, api_client_)

    # -- clients -------------------------------------------------------------------------------

    @property
    def apps(self) -> Any:
        return self._client.api("AppsV1Api")

    @property
    def core(self) -> Any:
        return self._client.api("CoreV1Api")

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} {self.namespace}/{name}"

    # -- the protocol --------------------------------------------------------------------------

    def deploy(
        self,
        version_id: str,
        truss_dir: Path,
        truss_config: TrussConfig,
        *,
        model: str = "",
        truss_hash: str = "",
    ) -> str:
        """Create (or, for a leftover of the same version, replace) the Deployment and Service."""
        truss_name = Path(truss_dir).name
        image = fill(
            self.image_template,
            {
                "truss_name": truss_name,
                "truss_hash": truss_hash,
                "truss_hash_short": truss_hash[:16] or "latest",
            },
        )
        deployment = deployment_manifest(
            version_id=version_id,
            namespace=self.namespace,
            truss_config=truss_config,
            model=model,
            truss_hash=truss_hash,
            truss_name=truss_name,
            image=image,
            secret_name=self.secret_name,
            image_pull_secrets=self.image_pull_secrets,
        )
        deployment["metadata"]["annotations"].update(self.extra_annotations)
        name = object_name(version_id)
        self._create_or_replace(
            self._where("Deployment", name),
            deployment,
            create=self.apps.create_namespaced_deployment,
            read=self.apps.read_namespaced_deployment,
            replace=self.apps.replace_namespaced_deployment,
        )
        service = service_manifest(
            version_id=version_id,
            namespace=self.namespace,
            labels=deployment["metadata"]["labels"],
        )
        try:
            self._create_or_replace(
                self._where("Service", name),
                service,
                create=self.core.create_namespaced_service,
                read=self.core.read_namespaced_service,
                replace=self.core.replace_namespaced_service,
            )
        except ZooOpsError:
            # No Deployment without its Service; the Service's failure is what to report.
            with contextlib.suppress(ZooOpsError):
                self._delete_objects(name, kinds=("Deployment",))
            raise
        return f"{ARTIFACT_KIND}:{self.namespace}/{name}"

    def _create_or_replace(
        self, where: str, body: dict[str, Any], *, create: Any, read: Any, replace: Any
    ) -> None:
        created = call_api(where, "create", create, self.namespace, body, tolerate=(409,))
        if created is not None:
            return
        # Already there (a retried deploy of the same version): take the desired spec.
        current = call_api(where, "read", read, body["metadata"]["name"], self.namespace)
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        if body["kind"] == "Service":
            body["spec"]["clusterIP"] = current.spec.cluster_ip
        call_api(where, "replace", replace, body["metadata"]["name"], self.namespace, body)

    def wait_ready(self, version_id: str, artifact: str, timeout_s: float) -> None:
        name = object_name(version_id)
        where = self._where("Deployment", name)
        last: Any = None

        def judge(deployment: Any) -> bool | None:
            nonlocal last
            last = deployment
            ready, failure = readiness(deployment)
            if failure:
                raise StepFailed(f"{where} failed to roll out: {failure}")
            return True if ready else None

        def probe() -> bool | None:
            read = self.apps.read_namespaced_deployment_status
            return judge(call_api(where, "read", read, name, self.namespace))

        def changes(left: float) -> Iterator[bool | None]:
            list_fn = self.apps.list_namespaced_deployment
            selector = f"metadata.name={name}"
            for deployment in watch_objects(
                where, list_fn, self.namespace, field_selector=selector, timeout_s=left
            ):
                yield judge(deployment)

        first_s = min(0.05, self.poll_interval_s)
        if wait_watching(
            probe, changes, timeout_s=timeout_s, first_s=first_s, cap_s=self.poll_interval_s
        ):
            return
        deployment = last
        pods = call_api(
            where,
            "list pods of",
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{VERSION_LABEL}={version_id}",
        )
        why = pod_problems(pods.items or []) if pods is not None else ""
        status = deployment.status
        ready_count = (status.ready_replicas or 0) if status else 0
        raise StepFailed(
            f"{where} not ready after {timeout_s:g}s ({ready_count} of "
            f"{deployment.spec.replicas or 1} replicas ready)" + (f": {why}" if why else "")
        )

    def predict(self, version: OracleVersion, request: Any) -> Any:
        """POST the request as JSON to the version's URL; the JSON answer back."""
        url = self.predict_url(version)
        data = json.dumps(request).encode("utf-8")
        http_request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.predict_timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = " ".join(exc.read()[:300].decode("utf-8", "replace").split())
            raise StepFailed(
                f"predict on version {version.id}: HTTP {exc.code} from {url}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StepFailed(
                f"predict on version {version.id}: cannot reach {url} ({reason}); "
                f"check {self._url_key(version)} and that the version is ready"
            ) from None
        try:
            return json.loads(body)
        except ValueError:
            raise StepFailed(
                f"predict on version {version.id}: {url} answered with something that is not JSON"
            ) from None

    @staticmethod
    def _url_key(version: OracleVersion) -> str:
        return "predict_url_template" if version.truss_hash else "legacy_predict_url_template"

    def endpoint_problem(self, version: OracleVersion) -> str | None:
        """None when :meth:`predict` knows where ``version`` is served, else what to set."""
        if version.truss_hash or self.legacy_predict_url_template:
            return None
        return (
            f"version {version.id} is a legacy version (no truss hash) served by the "
            "platform and zoo-ops has no URL for it; set legacy_predict_url_template to "
            "the URL serving legacy versions (fields {version_id}, {oracle_id}, "
            "{artifact}, {namespace})"
        )

    def predict_url(self, version: OracleVersion) -> str:
        """The URL serving ``version``: the template of its kind, filled from its row."""
        problem = self.endpoint_problem(version)
        if problem:
            raise ConfigError(problem)
        values = {
            "version_id": version.id,
            "oracle_id": version.oracle_id,
            "artifact": artifact_path(version.artifact),
            "namespace": self.namespace,
        }
        if not version.truss_hash:
            return fill(self.legacy_predict_url_template, values)
        values.update(service=object_name(version.id), truss_hash=version.truss_hash)
        return fill(self.predict_url_template, values)

    def made_by_zoo_ops(self, version: OracleVersion) -> bool:
        """Whether the version's artifact is a Deployment this adapter created."""
        own = f"{ARTIFACT_KIND}:{self.namespace}/{object_name(version.id)}"
        return self.manages_versions and version.artifact == own

    def retire(self, version: OracleVersion) -> Removal:
        """Delete what serves the version when zoo-ops made it; else leave it, saying what."""
        if self.made_by_zoo_ops(version):
            self.delete(version)
            name = object_name(version.id)
            return Removal(removed=f"Deployment and Service {self.namespace}/{name}")
        what = version.artifact or f"the platform's serving of version {version.id}"
        why = (
            "a legacy version, served by the platform"
            if not version.truss_hash
            else "deployed by the platform's automation, not by zoo-ops"
        )
        return Removal(not_removed=f"serving not removed by zoo-ops: {what}", why=why)

    def delete(self, version: OracleVersion) -> None:
        """Delete the version's Deployment and Service; already gone is fine.

        The answer's body is not decoded: apiservers answer a delete with the deleted
        object or with a Status, depending on kind and version, and only the HTTP status
        matters here."""
        self._delete_objects(object_name(version.id))

    def _delete_objects(
        self, name: str, kinds: tuple[str, ...] = ("Deployment", "Service")
    ) -> None:
        """Delete the named Deployment and/or Service; already gone is fine."""
        delete = {
            "Deployment": self.apps.delete_namespaced_deployment,
            "Service": self.core.delete_namespaced_service,
        }
        for kind, fn in ((kind, delete[kind]) for kind in kinds):
            response = call_api(
                self._where(kind, name),
                "delete",
                fn,
                name,
                self.namespace,
                propagation_policy="Background",
                tolerate=(404,),
                _preload_content=False,
            )
            if response is not None:
                response.release_conn()
