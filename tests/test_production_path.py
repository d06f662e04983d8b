"""The production path, end to end (issue 15): `plans/zoo-staging-prod.yaml` driven through
the real `zoo-ops` command on two PostgreSQL platform databases attached with `zoo-ops
init`, two TLS Kubernetes stand-ins with tokens, and the platform's own automation
deploying (``automation = "platform"``); prod ``requires = "staging"`` and is protected.

The story an SRE lives through (the harness is :mod:`support.e2e`):

1. both databases attached with ``zoo-ops init`` (prod needs ``--confirm prod``);
2. prod is refused at every point where staging's chain for the truss is incomplete
   (summarizer, step by step: 01, the whitelist writes, 02, 03; after the rollout, 05),
   nothing changed in either environment;
3. a rollout without ``--confirm prod`` runs staging's steps and stops at prod's first
   write, nothing changed in prod;
4. the rollout with ``--confirm prod``: iris, resnet50 (a T4: three in staging, one plus a
   scalable pool of two in prod), summarizer go 01 -> 02 -> 03 in staging then prod (05 is
   not due); sentiment's truss answers one example differently, so its 02 fails in staging,
   the rollout exits 1 and sentiment never reaches prod;
5. sentiment's 03 is refused in both environments while its 02 has failed;
6. every prod write without confirm is refused, nothing changed;
7. the end state, read back from both platform databases and both clusters.
"""

from __future__ import annotations

import pytest
from support.e2e import (
    REPO,
    TRUSSES,
    ProductionPath,
    editor_adding_sentiment,
    expect_refused,
    expect_success,
    production_path,  # noqa: F401 - the fixture `production`
)

from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.testing.kube_api import BASETEN_NAMESPACE

pytestmark = pytest.mark.long  # minutes each: conftest spreads them over the run

PLAN = str(REPO / "plans" / "zoo-staging-prod.yaml")
ROLLED_OUT = ("iris", "resnet50", "summarizer")
HASHES = {m: truss_content_hash(TRUSSES / m) for m in (*ROLLED_OUT, "sentiment")}
CONFIRM = ("-p", "confirm", "prod")
NOT_IN_STAGING = "has not succeeded in staging"


def run(path: ProductionPath, step: str, model: str, env: str, *extra: str) -> None:
    expect_success(path, "run", step, "-m", model, "-e", env, *extra)


def test_the_zoo_goes_staging_then_prod_and_prod_waits_for_staging(
    production: ProductionPath,
) -> None:
    p = production

    # 1. Attach both platform databases; zoo-ops creates only its own tables.
    for env, extra in (("staging", ()), ("prod", ("--confirm", "prod"))):
        tables_before = p.side(env).platform_rows()
        done = expect_success(p, "init", "-e", env, *extra)
        assert "platform tables match" in done.stdout
        assert p.side(env).platform_rows() == tables_before
    expect_refused(p, "init", "-e", "prod", needles=("--confirm prod",))

    # 2. Prod, step by step, where staging's chain for summarizer is incomplete.
    summarizer = ("run", "01_copy", "-m", "summarizer", "-e", "prod", *CONFIRM)
    expect_refused(p, *summarizer, needles=("01_copy", NOT_IN_STAGING))
    set_copy = ("whitelist", "-e", "prod", "set", "summarizer", "--confirm", "prod", "--copy")
    expect_refused(p, *set_copy, "true", needles=(NOT_IN_STAGING,))
    run(p, "01_copy", "summarizer", "staging")
    run(p, "01_copy", "summarizer", "prod", *CONFIRM)
    verify = ("run", "02_verify", "-m", "summarizer", "-e", "prod", *CONFIRM)
    expect_refused(p, *verify, needles=("02_verify", NOT_IN_STAGING))
    run(p, "02_verify", "summarizer", "staging")
    run(p, "02_verify", "summarizer", "prod", *CONFIRM)
    migrate = ("run", "03_migrate", "-m", "summarizer", "-e", "prod", *CONFIRM)
    expect_refused(p, *migrate, needles=("03_migrate", NOT_IN_STAGING))
    expect_refused(p, *set_copy, "false", needles=(NOT_IN_STAGING,))
    assert p.prod.whitelist() == {"summarizer": {"copy": True}}

    # 3. A rollout without --confirm prod: staging goes ahead, prod's first write refused.
    prod_before = p.prod.state()
    done = p.zoo_ops("rollout", PLAN)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "rollout stopped at iris prod 01_copy" in line and "confirm prod" in line
    assert p.prod.state() == prod_before
    assert p.staging.zoo_current("iris")[1] == HASHES["iris"]

    # 4. The rollout with --confirm prod resumes, and stops at sentiment's failed 02.
    done = p.zoo_ops("rollout", PLAN, "--confirm", "prod")
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "rollout stopped at sentiment staging 02_verify" in line
    assert "1 of 5 answers differ" in line
    table = [row.split() for row in done.stdout.splitlines()]
    assert ["iris", "staging", "01_copy", "done", "before"] == table[1][:5]
    assert ["summarizer", "prod", "02_verify", "done", "before"] in [r[:5] for r in table]
    assert ["summarizer", "prod", "03_migrate", "succeeded"] in [r[:4] for r in table]
    assert not [r for r in table if r[:2] == ["sentiment", "prod"]]
    assert not (p.root / "executed" / "prod" / "sentiment").exists(), "sentiment reached prod"
    assert "sentiment" not in p.prod.whitelist()
    # 05 in prod (even when old enough) needs staging's 05 for the same truss.
    retire = ("run", "05_retire", "-m", "summarizer", "-e", "prod", *CONFIRM)
    expect_refused(p, *retire, "-p", "min_age_days", "0", needles=("05_retire", NOT_IN_STAGING))

    # 5. Sentiment's 03 is refused in both environments while its 02 has failed.
    expect_refused(
        p, "run", "03_migrate", "-m", "sentiment", "-e", "staging", needles=("02_verify",)
    )
    expect_refused(
        p, "run", "03_migrate", "-m", "sentiment", "-e", "prod", *CONFIRM, needles=("02_verify",)
    )

    # 6. Every prod write without confirm is refused, nothing changed.
    for step in ("01_copy", "02_verify", "03_migrate", "04_revert", "05_retire"):
        expect_refused(p, "run", step, "-m", "summarizer", "-e", "prod", needles=("confirm prod",))
    opened = editor_adding_sentiment(p)
    for command in (
        ("whitelist", "-e", "prod", "set", "sentiment", "--copy", "true"),
        ("whitelist", "-e", "prod", "set", "iris", "--copy", "false"),
        ("whitelist", "-e", "prod", "remove", "iris"),
        ("whitelist", "-e", "prod", "edit"),
        ("automation", "-e", "prod", "reconcile"),
    ):
        expect_refused(p, *command, needles=("--confirm prod",))
    assert not opened.exists(), "the editor was opened for a write that needs confirm"

    # 7. The end state, read back from the platform databases and the clusters.
    for side in (p.staging, p.prod):
        for model in ROLLED_OUT:
            current, truss_hash = side.zoo_current(model)
            assert truss_hash == HASHES[model], (side.name, model)
            assert current in side.platform.created, "the platform, not zoo-ops, made it"
            assert side.app_proxies(model) == {current}, (side.name, model)
        legacy = side.db.current_versions["sentiment"]
        assert side.zoo_current("sentiment") == (legacy, None)
        assert side.app_proxies("sentiment") == {legacy}
        assert side.kube.list_objects("Deployment", BASETEN_NAMESPACE) == []
        assert not side.platform.errors
        truss_versions = {
            str(v)
            for (v,) in side.rows(
                "SELECT id FROM oracles_oracleversion WHERE truss_hash IS NOT NULL"
            )
        }
        assert truss_versions <= set(side.platform.created), "zoo-ops created a version"
        # zoo-ops wrote each whitelist conditionally (update with the resourceVersion it
        # read), never by patch; and it reached each cluster over TLS with its token.
        assert side.zoo_ops_requests("update", "configmaps")
        assert side.zoo_ops_requests("patch", "configmaps") == []
    rolled = {model: {"copy": False} for model in ROLLED_OUT}
    assert p.staging.whitelist() == {**rolled, "sentiment": {"copy": True}}
    assert p.prod.whitelist() == rolled
    assert "sentiment_copy" in p.staging.zoo_model_names()
    assert "sentiment_copy" not in p.prod.zoo_model_names()

    # prod's runs table: summarizer's steps succeeded once each, in order; each refusal
    # for staging's chain is recorded as refused, naming it; sentiment never ran in prod.
    runs = p.prod.rows(
        "SELECT model, step, outcome, error FROM zoo_ops_run WHERE env = 'prod' "
        "ORDER BY started_at, id"
    )
    done_runs = [(m, s) for m, s, outcome, _ in runs if outcome in ("succeeded", "failed")]
    assert done_runs == [
        ("summarizer", "01_copy"),
        ("summarizer", "02_verify"),
        *(("iris", s) for s in ("01_copy", "02_verify", "03_migrate")),
        *(("resnet50", s) for s in ("01_copy", "02_verify", "03_migrate")),
        ("summarizer", "03_migrate"),
    ]
    for step in ("01_copy", "02_verify", "03_migrate", "05_retire"):
        assert any(
            (m, s, o) == ("summarizer", step, "refused") and NOT_IN_STAGING in (error or "")
            for m, s, o, error in runs
        ), step
    assert {o for m, _s, o, _e in runs if m == "sentiment"} == {"refused"}
