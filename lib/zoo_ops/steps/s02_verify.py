"""Step 02: test a candidate zoo version through a real application (the seed's "Test
the model zoo model", without shell_plus).

An application on the zoo model is pointed at the baseline version, asked every input,
pointed at the candidate, asked again; the answers are compared; the application's
original proxy is restored in a ``finally``. Predictions go through the application's
proxy, as the platform routes them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.store import Application, OracleVersion
from zoo_ops.domain.bounded_yaml import DocumentRefused, load_bounded
from zoo_ops.domain.compare import first_difference, leaf_pairs
from zoo_ops.domain.ids import new_id
from zoo_ops.domain.whitelist import COPY_SUFFIX
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, ConfigError, NotFound, StepFailed, ZooOpsError
from zoo_ops.services.applications import (
    predict_through,
    previous_active_version,
    resolve_test_user,
)
from zoo_ops.services.results import StepResult
from zoo_ops.steps.parameters import VerifyParameters

TARGETS = ("copy", "new")


def candidate_and_baseline(
    env: Environment, model: str, target: str
) -> tuple[OracleVersion, OracleVersion]:
    """(candidate, baseline): copy -> (MODEL_copy current, MODEL current); new -> (MODEL current, previous)."""
    if target not in TARGETS:
        raise BadInput(f"parameter target={target!r}: must be 'copy' or 'new'")
    store = env.platform
    zoo = store.zoo_model(model)
    if target == "copy":
        copy = store.find_zoo_model(model + COPY_SUFFIX)
        if copy is None:
            raise NotFound(f"no {model}{COPY_SUFFIX} model: run 01_copy for {model} first")
        candidate = store.current_version(copy)
        baseline = store.current_version(zoo)
    else:
        candidate = store.current_version(zoo)
        if not candidate.truss_hash:
            raise BadInput(
                f"{model}'s current version {candidate.id} is not a truss version; run 03_migrate first"
            )
        baseline = previous_active_version(env, model)
    if candidate.status != s.ACTIVE:
        raise StepFailed(f"candidate version {candidate.id} is {candidate.status}, not ACTIVE")
    return candidate, baseline


@dataclass
class ProbeApplication(StepResult):
    """The application used for the test, where it pointed, and the versions compared."""

    model: str
    target: str
    application: Application | None
    created: bool
    user_email: str
    baseline_version_id: str
    candidate_version_id: str
    truss_hash: str | None

    @property
    def original_version_id(self) -> str:
        return (
            self.application.proxy_model_version_id
            if self.application
            else self.baseline_version_id
        )

    def to_frame(self) -> pd.DataFrame:
        app = self.application
        return pd.DataFrame(
            [
                {
                    "what": "application (oracle)",
                    "value": app.oracle_id if app else "(dry run: none created)",
                },
                {"what": "created for", "value": self.user_email if self.created else "given"},
                {"what": "user version", "value": app.version_id if app else ""},
                {"what": "original proxy", "value": self.original_version_id},
                {"what": "baseline version", "value": self.baseline_version_id},
                {"what": f"candidate version ({self.target})", "value": self.candidate_version_id},
            ]
        )

    def scraps(self) -> dict[str, Any]:
        return {
            "oracle_id": self.application.oracle_id if self.application else None,
            "original_version_id": self.original_version_id,
            "candidate_version_id": self.candidate_version_id,
        }


@dataclass(frozen=True)
class ProbePlan:
    """Everything 02 needs, checked, before it changes anything (DESIGN: bad input changes
    nothing): the user or application, the two versions, the inputs and the tolerance."""

    model: str
    target: str
    user_email: str
    existing: Application | None
    baseline: OracleVersion
    candidate: OracleVersion
    requests: list[tuple[str, Any]]

    @property
    def truss_hash(self) -> str | None:
        return self.candidate.truss_hash


def plan_probe(
    env: Environment,
    model: str,
    *,
    target: str = VerifyParameters.target,
    user_email: str = "",
    oracle_id: str = "",
    inputs: str = "",
    rtol: float = VerifyParameters.rtol,
) -> ProbePlan:
    """Check every input of the step, writing nothing; the first problem is raised.

    Order: the caller's own values first (user, tolerance: a wrong one is named before
    the state is looked at), then the versions, the application named, the inputs.
    """
    email = "" if oracle_id else resolve_test_user(env, user_email)
    check_rtol(rtol)
    candidate, baseline = candidate_and_baseline(env, model, target)
    check_endpoints(env, baseline, candidate)
    existing = _named_application(env, model, oracle_id) if oracle_id else None
    requests = load_inputs(env, model, inputs)
    return ProbePlan(model, target, email, existing, baseline, candidate, requests)


def check_endpoints(env: Environment, *versions: OracleVersion) -> None:
    """Refuse (ConfigError, one line, nothing changed) when serving does not know where a
    version is served: e.g. a legacy baseline on Kubernetes without
    ``legacy_predict_url_template``."""
    for version in versions:
        problem = env.serving.endpoint_problem(version)
        if problem:
            raise ConfigError(f"[env.{env.name}] {problem}")


def check_rtol(rtol: object) -> float:
    """``rtol`` if it is a finite number >= 0 (nan compares false to everything: no check)."""
    if isinstance(rtol, bool) or not isinstance(rtol, int | float):
        raise BadInput(f"parameter rtol={rtol!r}: must be a number >= 0")
    if not math.isfinite(rtol) or rtol < 0:
        raise BadInput(f"parameter rtol={rtol!r}: must be a finite number >= 0")
    return float(rtol)


def _named_application(env: Environment, model: str, oracle_id: str) -> Application:
    """The application ``oracle_id``, which must use ``model`` (or its copy)."""
    store = env.platform
    app = store.application(oracle_id)
    proxied = store.version(app.proxy_model_version_id)
    allowed = {store.zoo_model(model).id}
    copy = store.find_zoo_model(model + COPY_SUFFIX)
    if copy is not None:
        allowed.add(copy.id)
    if proxied.oracle_id not in allowed:
        raise BadInput(
            f"application {oracle_id} does not use model zoo model {model}; pick one that does"
        )
    return app


def probe_application(
    env: Environment, plan: ProbePlan, *, dry_run: bool = False
) -> ProbeApplication:
    """The test application: the one named, or a new one for the test user (not in a dry run).

    The only write of the step's first half, made after :func:`plan_probe` and the gate.
    """
    application = plan.existing
    created = False
    if application is None and not dry_run:
        user = env.platform.user_by_email(plan.user_email)
        application = env.platform.create_application(
            user.organization_id, plan.model, name=f"zoo-ops-test-{plan.model}-{new_id(5)}"
        )
        created = True
    return ProbeApplication(
        plan.model,
        plan.target,
        application,
        created,
        plan.user_email,
        plan.baseline.id,
        plan.candidate.id,
        plan.candidate.truss_hash,
    )


# Inputs are examples (arrays of numbers): larger than a settings file, far below a bomb.
MAX_INPUT_NODES = 1_000_000


def load_inputs(env: Environment, model: str, inputs: str = "") -> list[tuple[str, Any]]:
    """(name, request) pairs: a YAML/JSON file of truss examples, else the truss's examples.yaml.

    The file must be a regular file (a FIFO would hang the read, a folder crash it) and is
    loaded with aliases bounded, numbers finite and strings valid text
    (:func:`~zoo_ops.domain.bounded_yaml.load_bounded`).
    """
    from zoo_ops.adapters.truss_runtime import read_truss
    from zoo_ops.domain.truss_config import parse_examples

    if not inputs:
        package = read_truss(env.config.truss_root_path / model)
        examples = package.examples
    else:
        path = Path(inputs)
        if not path.is_absolute():
            path = env.config.root / path
        if not path.exists():
            raise NotFound(f"inputs file {path} does not exist; pass a truss examples.yaml")
        if not path.is_file():
            raise BadInput(f"inputs {path} is not a regular file; pass a truss examples.yaml")
        try:
            data = load_bounded(path.read_bytes(), max_nodes=MAX_INPUT_NODES)
        except DocumentRefused as exc:
            raise BadInput(f"inputs file {path}: {exc}; fix the file") from None
        except OSError as exc:
            raise BadInput(f"inputs file {path} cannot be read ({exc.strerror}); fix it") from None
        examples = parse_examples(data, str(path))
    if not examples:
        raise BadInput(f"no inputs to compare for {model}; give an examples.yaml with at least one")
    return [(e.name, e.input) for e in examples]


def _ask(env: Environment, version: OracleVersion | str, request: Any) -> tuple[Any, str | None]:
    try:
        if isinstance(version, str):
            return predict_through(env, version, request), None
        return env.serving.predict(version, request), None
    except ZooOpsError as err:
        return None, str(err)


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class Comparison(StepResult):
    """Baseline answers against candidate answers, one row per input."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    restored_to: str | None = None
    rtol: float = VerifyParameters.rtol  # the tolerance the rows were compared with

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r["match"] for r in self.rows)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            self.rows, columns=["input", "expected", "actual", "match", "difference"]
        )

    def display_frame(self) -> pd.DataFrame:
        """One row per answer field of each example (``predictions[0]``,
        ``probabilities[0][1]``): baseline beside candidate, and whether that field matches
        within ``rtol``; an answer that is an error is one row with its text."""
        shown = []
        for row in self.rows:
            for field_path, baseline, candidate in _answer_fields(row):
                shown.append(
                    {
                        "input": row["input"],
                        "field": field_path,
                        "baseline": baseline,
                        "candidate": candidate,
                        "match": first_difference(baseline, candidate, self.rtol) is None,
                    }
                )
        return pd.DataFrame(shown, columns=["input", "field", "baseline", "candidate", "match"])

    def scraps(self) -> dict[str, Any]:
        return {"comparison": self.to_frame(), "passed": self.passed}

    def pictures(self) -> list[Any]:
        from zoo_ops.plots import answers_with_tolerance

        return [answers_with_tolerance(self)]

    def failure(self) -> str | None:
        if self.passed:
            return None
        bad = [r for r in self.rows if not r["match"]]
        return (
            f"{len(bad)} of {len(self.rows)} answers differ (first: {bad[0]['input']}: "
            f"{bad[0]['difference']}); the candidate does not answer as the current version"
        )


def _answer_fields(row: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    try:
        expected, actual = json.loads(row["expected"]), json.loads(row["actual"])
    except (TypeError, ValueError):  # an error text, not an answer
        return [("answer", row["expected"], row["actual"])]
    return leaf_pairs(expected, actual)


def compare(
    env: Environment,
    app: ProbeApplication,
    *,
    inputs: str = "",
    rtol: float = VerifyParameters.rtol,
    restore: bool = VerifyParameters.restore,
    requests: list[tuple[str, Any]] | None = None,
) -> Comparison:
    """Predict every input on the baseline, then on the candidate, through the application.

    In a dry run (no application) both versions are asked directly and nothing changes.
    The application's original proxy is put back in a ``finally`` when ``restore``.
    ``requests``: the inputs :func:`plan_probe` already checked (the file is not read
    again after the test application exists); else ``inputs`` is loaded here.
    """
    check_rtol(rtol)
    if requests is None:
        requests = load_inputs(env, app.model, inputs)
    store = env.platform
    baseline = store.version(app.baseline_version_id)
    candidate = store.version(app.candidate_version_id)
    expected: list[tuple[Any, str | None]]
    actual: list[tuple[Any, str | None]]
    result = Comparison(rtol=float(rtol))
    application = app.application
    if application is None:
        expected = [_ask(env, baseline, r) for _, r in requests]
        actual = [_ask(env, candidate, r) for _, r in requests]
    else:
        original = application.proxy_model_version_id
        try:
            store.set_proxy(application.version_id, baseline.id)
            expected = [_ask(env, application.version_id, r) for _, r in requests]
            store.set_proxy(application.version_id, candidate.id)
            actual = [_ask(env, application.version_id, r) for _, r in requests]
        finally:
            if restore:
                store.set_proxy(application.version_id, original)
                result.restored_to = original
    for (name, _), (exp, exp_err), (act, act_err) in zip(requests, expected, actual, strict=True):
        if exp_err or act_err:
            difference = (
                f"baseline failed: {exp_err}" if exp_err else f"candidate failed: {act_err}"
            )
            match = False
        else:
            diff = first_difference(exp, act, float(rtol))
            match, difference = diff is None, diff or ""
        result.rows.append(
            {
                "input": name,
                "expected": exp_err or _shown(exp),
                "actual": act_err or _shown(act),
                "match": match,
                "difference": difference,
            }
        )
    return result
