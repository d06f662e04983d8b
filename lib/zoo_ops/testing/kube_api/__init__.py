"""A Kubernetes API stand-in: a real HTTP server that behaves as the apiserver does.

No real apiserver can run where zoo-ops is tested, so this is the one sanctioned fake, and
it is written against the apiserver's observable contract, not against zoo-ops's needs:

* resources: core/v1 Namespaces, ConfigMaps, Secrets, Nodes, Pods, Services; apps/v1
  Deployments (with ``status`` and ``scale`` subresources);
* verbs: get, list (namespaced and across namespaces, label and field selectors, ``limit`` and
  ``continue``), watch (chunked JSON event stream), create (409 AlreadyExists), update (409
  Conflict on a stale ``metadata.resourceVersion``, unconditional when it is empty), patch
  (JSON merge patch, strategic merge patch with the patch-merge keys of these kinds, RFC 6902
  JSON patch including ``test``), delete and deletecollection, ``dryRun=All``;
* one global ``resourceVersion`` counter bumped on every write; a write that changes nothing
  is a no-op and keeps the version, as etcd3's GuaranteedUpdate does;
* ``Status`` bodies with the apiserver's reasons, codes, details and messages;
* discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/apps``, ``/apis/apps/v1``)
  in the legacy form, which kubectl falls back to when a server answers its aggregated
  discovery ``Accept`` header with plain ``application/json``; server-side ``Table`` output
  for ``kubectl get``;
* a small Deployment controller and scheduler: a Deployment gets Pods built from its
  template, placed on a Node whose labels match the nodeSelector, whose ``NoSchedule`` taints
  are tolerated and whose allocatable resources (cpu, memory, ``nvidia.com/gpu``, ...) still
  fit; the Deployment becomes ready (``readyReplicas``, ``availableReplicas``, condition
  ``Available=True``, ``observedGeneration``) after ``ready_delay_s`` seconds, never
  (annotation ``zoo-ops.test/never-ready: "true"``), or fails
  (``zoo-ops.test/fail: "true"``: Progressing=False, ProgressDeadlineExceeded).

With ``tls=True`` it serves https (a CA made per stand-in with ``trustme``) and requires
the bearer token of its kubeconfig (401 without it or with another). Its ``faults`` plan
(:mod:`.faults`) makes chosen requests answer 429 with Retry-After, 503, reset the
connection, or stall: the faults a real operator tool meets.

Every request is recorded in ``request_log`` as a :class:`KubeRequest` with the Kubernetes
authorization verb, so that tests can check a client's calls against an RBAC Role.

Run it: ``python -m zoo_ops.testing.kube_api --port 0 --seed FILE --kubeconfig OUT [--tls]``.

The package, from the lower modules to the higher (a module imports only from lower ones):

* :mod:`.resource_types`, :mod:`.errors`, :mod:`.values`, :mod:`.patching`, :mod:`.seed`,
  :mod:`.request_log`, :mod:`.faults`: served types, ``Status`` errors, times/quantities/names, the three
  patch formats, seed manifests, the request log, the fault plan;
* :mod:`.selectors`, :mod:`.validation`, :mod:`.tables`, :mod:`.protobuf`,
  :mod:`.scheduler`, :mod:`.store`: label and field selectors, kind-independent checks,
  ``kubectl get`` tables, protobuf bodies, the scheduler's rules, the object store;
* :mod:`.configmaps_secrets`, :mod:`.nodes_pods`, :mod:`.deployments_services`, then
  :mod:`.kinds`: decoding checks, defaults and validation per kind, and their dispatch;
* :mod:`.controller`: the Deployment controller and readiness simulation over the store;
* :mod:`.routing`, :mod:`.discovery`, :mod:`.api`: URLs and RBAC verbs, discovery and
  OpenAPI documents, the API verbs;
* :mod:`.http_server`, :mod:`.standin`, :mod:`.cli` (and ``__main__``): HTTP, the public
  :class:`KubeApiStandIn` with its authentication and request log, the command line.

This module re-exports the names the rest of zoo-ops and its tests import.
"""

from zoo_ops.testing.kube_api.api import Api, WriteOptions
from zoo_ops.testing.kube_api.cli import main
from zoo_ops.testing.kube_api.controller import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    READY_AFTER_ANNOTATION,
    ROOT_CA_CONFIGMAP,
)
from zoo_ops.testing.kube_api.discovery import discovery_documents, openapi_v3_documents
from zoo_ops.testing.kube_api.errors import (
    STALE_OBJECT,
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    invalid_value,
    not_found,
    required_value,
)
from zoo_ops.testing.kube_api.faults import ALL_FAULT_KINDS, FAULT_KINDS, Fault, FaultPlan, Served
from zoo_ops.testing.kube_api.kinds import apply_defaults, check_decodable, validate
from zoo_ops.testing.kube_api.patching import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from zoo_ops.testing.kube_api.protobuf import decode_protobuf
from zoo_ops.testing.kube_api.request_log import (
    _PROCESS_LOG_LOCK,
    PROCESS_REQUEST_LOG,
    KubeRequest,
)
from zoo_ops.testing.kube_api.resource_types import (
    DEFAULT_SERVER_VERSION,
    RESOURCE_TYPES,
    Obj,
    ResourceType,
    resource_type,
)
from zoo_ops.testing.kube_api.routing import Route, parse_route, rbac_verb
from zoo_ops.testing.kube_api.scheduler import pod_requests, schedule
from zoo_ops.testing.kube_api.seed import (
    ACCELERATOR_LABEL,
    BASETEN_NAMESPACE,
    GPU_RESOURCE,
    SETTINGS_CONFIGMAP,
    default_seed_manifests,
    load_manifests,
)
from zoo_ops.testing.kube_api.selectors import (
    Requirement,
    parse_field_selector,
    parse_label_selector,
    selector_requirements,
)
from zoo_ops.testing.kube_api.standin import DEFAULT_TOKEN, KubeApiStandIn
from zoo_ops.testing.kube_api.store import WATCH_HISTORY
from zoo_ops.testing.kube_api.tables import as_table
from zoo_ops.testing.kube_api.validation import drop_unknown_fields
from zoo_ops.testing.kube_api.values import human_duration, now_rfc3339, parse_quantity

__all__ = [
    "ACCELERATOR_LABEL",
    "BASETEN_NAMESPACE",
    "DEFAULT_SERVER_VERSION",
    "DEFAULT_TOKEN",
    "FAIL_ANNOTATION",
    "ALL_FAULT_KINDS",
    "FAULT_KINDS",
    "GPU_RESOURCE",
    "NEVER_READY_ANNOTATION",
    "PROCESS_REQUEST_LOG",
    "READY_AFTER_ANNOTATION",
    "RESOURCE_TYPES",
    "ROOT_CA_CONFIGMAP",
    "SETTINGS_CONFIGMAP",
    "STALE_OBJECT",
    "WATCH_HISTORY",
    "_PROCESS_LOG_LOCK",
    "Api",
    "ApiError",
    "Fault",
    "FaultPlan",
    "FieldError",
    "KubeApiStandIn",
    "KubeRequest",
    "Obj",
    "PatchError",
    "Requirement",
    "ResourceType",
    "Served",
    "Route",
    "WriteOptions",
    "already_exists",
    "apply_defaults",
    "as_table",
    "bad_request",
    "check_decodable",
    "conflict",
    "decode_protobuf",
    "default_seed_manifests",
    "discovery_documents",
    "drop_unknown_fields",
    "forbidden",
    "human_duration",
    "invalid",
    "invalid_value",
    "json_patch",
    "load_manifests",
    "main",
    "merge_patch",
    "not_found",
    "now_rfc3339",
    "openapi_v3_documents",
    "parse_field_selector",
    "parse_label_selector",
    "parse_quantity",
    "parse_route",
    "pod_requests",
    "rbac_verb",
    "required_value",
    "resource_type",
    "schedule",
    "selector_requirements",
    "strategic_merge_patch",
    "validate",
]
