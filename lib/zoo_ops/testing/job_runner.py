"""The Job controller's and the kubelet's part, for tests: a Job's pod as a local process.

No container runtime exists where zoo-ops is tested. :class:`JobRunner` watches the
stand-in (through the official client, over HTTP, as a controller would) and, for each
new Job, does what the Job controller and a kubelet do:

1. creates the Job's Pod from its template (labels ``job-name``, an owner reference);
2. builds the container's environment as the kubelet does: each ``env`` value, and every
   key of each ``envFrom`` Secret (base64-decoded) -- read from the stand-in, never from
   the test;
3. materialises the pod's volumes in a temporary folder: a ``configMap`` volume as one
   file per key, an ``emptyDir`` as an empty folder. A mount path cannot be created
   outside the test's folder, so each mount path is mapped to its folder, and the
   places that name a mount path -- an ``env`` value under it, the ``workingDir``, the
   ``terminationMessagePath`` -- get the mapped path. The command and every other
   variable are exactly the manifest's;
4. runs the command (``PATH`` starts with this interpreter's folder, as the image's does);
5. records the container's exit code, termination message (``FallbackToLogsOnError``:
   the log's tail when the message is empty and the container failed) and log, the
   pod's phase, and the Job's status and condition (``Complete`` / ``Failed``).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo_ops.testing.kube_api import KubeApiStandIn

POLL_S = 0.2
LOG_TAIL_LINES = 80


class JobRunner:
    """Runs every new Job of the stand-in as a local process (module doc); ``with`` it."""

    def __init__(self, standin: KubeApiStandIn, kubeconfig: Path, timeout_s: float = 600) -> None:
        from kubernetes import client, config

        self.standin = standin
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.batch: Any = client.BatchV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.timeout_s = timeout_s
        self.ran: dict[str, subprocess.CompletedProcess[str]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-runner", daemon=True)
        self._root = Path(tempfile.mkdtemp(prefix="zoo-ops-pods-"))

    def __enter__(self) -> JobRunner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s)
        shutil.rmtree(self._root, ignore_errors=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for job in self.batch.list_job_for_all_namespaces().items:
                    key = f"{job.metadata.namespace}/{job.metadata.name}"
                    if key not in self.ran:
                        self.ran[key] = self.run(job)
            except Exception as exc:  # noqa: BLE001 - a test reads the errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_S)

    def run(self, job: Any) -> subprocess.CompletedProcess[str]:
        """One Job, start to end (module doc, 1-5)."""
        namespace, name = job.metadata.namespace, job.metadata.name
        raw = self.batch.api_client.sanitize_for_serialization(job)
        template = raw["spec"]["template"]
        pod_name = f"{name}-{os.urandom(3).hex()[:5]}"
        labels = {**template.get("metadata", {}).get("labels", {}), "job-name": name}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": job.metadata.uid,
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        self.core.create_namespaced_pod(namespace, pod)
        spec = template["spec"]
        container = spec["containers"][0]
        folder = self._root / pod_name
        mounts = self._volumes(namespace, spec, container, folder)
        env = self._environment(namespace, container, mounts)
        cwd = _mapped(container.get("workingDir") or str(folder), mounts)
        message_path = Path(_mapped(container.get("terminationMessagePath", ""), mounts))
        self._status(namespace, pod_name, "Running", None)
        started = datetime.now(UTC)
        done = subprocess.run(
            container["command"] + container.get("args", []),
            env=env, cwd=cwd, capture_output=True, text=True, timeout=self.timeout_s,
        )  # fmt: skip
        log = done.stdout + done.stderr
        self.standin.set_pod_log(namespace, pod_name, log)
        message = message_path.read_text() if message_path.is_file() else ""
        if not message and done.returncode != 0:
            message = "\n".join(log.splitlines()[-LOG_TAIL_LINES:])
        self._status(namespace, pod_name, None, (done.returncode, message, started))
        self._finish_job(namespace, name, done.returncode, started)
        return done

    def _volumes(
        self, namespace: str, spec: dict[str, Any], container: dict[str, Any], folder: Path
    ) -> dict[str, str]:
        """Each mount path -> the local folder that stands for it (module doc, 3)."""
        sources = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts", []):
            local = folder / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            volume = sources[mount["name"]]
            if "configMap" in volume:
                cm = self.core.read_namespaced_config_map(volume["configMap"]["name"], namespace)
                for key, value in (cm.data or {}).items():
                    (local / key).write_text(value)
            mounts[mount["mountPath"]] = str(local)
        message_dir = folder / "termination"
        message_dir.mkdir(parents=True, exist_ok=True)
        path = container.get("terminationMessagePath", "/dev/termination-log")
        mounts[path] = str(message_dir / "message")
        return mounts

    def _environment(
        self, namespace: str, container: dict[str, Any], mounts: dict[str, str]
    ) -> dict[str, str]:
        """The container's environment as the kubelet builds it (module doc, 2)."""
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(Path(next(iter(mounts.values()))).parent),
        }
        for source in container.get("envFrom", []):
            secret = self.core.read_namespaced_secret(source["secretRef"]["name"], namespace)
            for key, value in (secret.data or {}).items():
                env[key] = base64.b64decode(value).decode()
        for item in container.get("env", []):
            env[item["name"]] = _mapped(item.get("value", ""), mounts)
        return env

    def _status(
        self, namespace: str, pod: str, phase: str | None, ended: tuple[int, str, Any] | None
    ) -> None:
        status: dict[str, Any]
        if ended is None:
            status = {"phase": phase, "containerStatuses": []}
        else:
            code, message, started = ended
            terminated = {
                "exitCode": code,
                "message": message,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started.isoformat(),
                "finishedAt": datetime.now(UTC).isoformat(),
            }
            status = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "zoo-ops",
                        "image": "",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        self.core.patch_namespaced_pod_status(pod, namespace, {"status": status})

    def _finish_job(self, namespace: str, name: str, code: int, started: datetime) -> None:
        now = datetime.now(UTC).isoformat()
        kind = "Complete" if code == 0 else "Failed"
        status = {
            "startTime": started.isoformat(),
            "succeeded" if code == 0 else "failed": 1,
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "lastTransitionTime": now,
                    "lastProbeTime": now,
                    **({} if code == 0 else {"reason": "BackoffLimitExceeded",
                                             "message": "Job has reached the specified backoff limit"}),
                }
            ],
        }  # fmt: skip
        if code == 0:
            status["completionTime"] = now
        self.batch.patch_namespaced_job_status(name, namespace, {"status": status})


def _mapped(value: str, mounts: dict[str, str]) -> str:
    """``value`` with a mount path at its start replaced by its local folder."""
    for path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if value == path or value.startswith(path.rstrip("/") + "/"):
            return local + value[len(path) :]
    return value
