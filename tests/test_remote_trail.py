"""The audit trail on object storage (issue 16): ``executed_root = "s3://zoo-trail/executed"``.

A real S3-protocol server (moto's standalone server on 127.0.0.1, :mod:`support.s3`) behind
a TCP relay that can fail the network; the production path of :mod:`support.e2e` (two
PostgreSQL platform databases, two TLS Kubernetes stand-ins, the platform's automation).
Each "operator" is a working directory of its own with its own zoo_ops.toml, state folder
and read cache, sharing nothing on disk with the other: only the platform databases, the
clusters and the bucket. Everything goes through the real ``zoo-ops`` command.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.e2e import (
    CLI,
    DATABASE_PASSWORD,
    ProductionPath,
    environment_table,
    production_path,  # noqa: F401 - the fixture `production`
)
from support.s3 import S3, SECRET_KEY, s3_server  # noqa: F401 - the fixture `s3`

from zoo_ops.errors import TrailUnwritable
from zoo_ops.trail.mirror import local_copy, sync
from zoo_ops.trail.stores import TrailStoreError, join_url, store_for

TRAIL = "s3://zoo-trail/executed"
CONFIRM = ("-p", "confirm", "prod")


@dataclass
class Operator:
    """One engineer's working directory: zoo_ops.toml naming the shared platform
    databases, clusters and bucket; state and cache under the directory itself."""

    name: str
    root: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600
        )
        out = done.stdout + done.stderr
        assert DATABASE_PASSWORD not in out and SECRET_KEY not in out, f"{args} printed a secret"
        return done

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self(*args)
        assert done.returncode == 0, (self.name, args, done.stdout, done.stderr)
        return done


def operator(p: ProductionPath, s3: S3, name: str) -> Operator:
    root = p.root / name
    root.mkdir()
    email = p.staging.db.test_user_email
    config = (
        environment_table("staging", root, p.server)
        + environment_table(
            "prod", root, p.server, extra='requires = "staging"\nprotected = true\n'
        )
    ).replace("{email}", email)
    config = re.sub(r'executed_root = ".*"', f'executed_root = "{TRAIL}"', config)
    (root / "zoo_ops.toml").write_text(config)
    env = {
        **p.env,
        **s3.env(),
        "ZOO_OPS_CONFIG": str(root / "zoo_ops.toml"),
        "XDG_CACHE_HOME": str(root / ".cache"),
        "HOME": str(root),
        "USER": name,
    }
    env.pop("ZOO_OPS_TRAIL_CACHE", None)
    return Operator(name, root, env)


def app_proxies(p: ProductionPath, model: str) -> list[tuple[str, str]]:
    """(application, the zoo version it proxies) of every user application of ``model``."""
    rows = p.staging.rows(
        "SELECT o.name, v.proxy_model_version_id FROM oracles_oracle o JOIN "
        "oracles_oracleversion v ON v.id = o.current_version_id "
        "WHERE NOT o.is_model_zoo AND o.name LIKE :pattern ORDER BY o.name",
        pattern=f"{model}-app-%",
    )
    return [(str(a), str(v)) for a, v in rows]


def run_row(p: ProductionPath, env: str, step: str) -> tuple[str, str, str]:
    """(id, outcome, notebook_path) of the latest ``step`` run of iris in ``env``."""
    side = p.side(env)
    rows = side.rows(
        "SELECT id, outcome, notebook_path FROM zoo_ops_run WHERE env = :e AND step = :s "
        "AND model = 'iris' ORDER BY started_at DESC",
        e=env,
        s=step,
    )
    assert rows, (env, step)
    return tuple(str(v) for v in rows[0])  # type: ignore[return-value]


@pytest.mark.long
def test_two_operators_share_one_trail_in_a_bucket(production: ProductionPath, s3: S3) -> None:
    p = production
    alice, bob = operator(p, s3, "alice"), operator(p, s3, "bob")
    alice.ok("init", "-e", "staging")
    alice.ok("init", "-e", "prod", "--confirm", "prod")
    before = app_proxies(p, "iris")

    # Alice rolls iris out in staging; each run's notebook is in the bucket, nowhere local.
    urls = {}
    for step in ("01_copy", "02_verify", "03_migrate"):
        done = alice.ok("run", step, "-m", "iris", "-e", "staging")
        url = done.stdout.strip().splitlines()[-1]
        assert url.startswith(f"{TRAIL}/staging/iris/") and url.endswith(f"-{step}.ipynb"), url
        run_id, outcome, notebook_path = run_row(p, "staging", step)
        assert (outcome, notebook_path) == ("succeeded", url)
        urls[step] = (run_id, url)
    migrated = app_proxies(p, "iris")
    assert {v for _, v in migrated} == {p.staging.zoo_current("iris")[0]} != {v for _, v in before}

    # Bob's gate in prod passes on Alice's staging runs, read from the shared trail.
    done = bob.ok("run", "01_copy", "-m", "iris", "-e", "prod", *CONFIRM)
    prod_run, outcome, prod_url = run_row(p, "prod", "01_copy")
    assert outcome == "succeeded" and prod_url == done.stdout.strip().splitlines()[-1]

    # Each sees the other's runs in status, notebooks read from the bucket.
    seen_by_bob = bob.ok("status", "-e", "staging", "-m", "iris").stdout
    for _run_id, url in urls.values():
        assert url in seen_by_bob, seen_by_bob
    seen_by_alice = alice.ok("status", "-e", "prod", "-m", "iris").stdout
    assert prod_url in seen_by_alice and "succeeded" in seen_by_alice, seen_by_alice

    # Bob reverts Alice's migration by its run id: every application back where it was.
    forward_id, _ = urls["03_migrate"]
    bob.ok("run", "04_revert", "-m", "iris", "-e", "staging", "-p", "forward_run", forward_id)
    assert app_proxies(p, "iris") == before
    assert run_row(p, "staging", "04_revert")[1] == "succeeded"
    # Alice's history of one application shows both runs' notebooks, by their URLs.
    ((app_version,),) = p.staging.rows(
        "SELECT current_version_id FROM oracles_oracle WHERE name = :n", n=before[0][0]
    )
    history = alice.ok("history", "-e", "staging", str(app_version)).stdout
    assert urls["03_migrate"][1] in history, history
    assert "notebook missing" not in history, history
    # Bob's report renders every notebook of the shared trail, Alice's included.
    bob.ok("report", "-e", "staging", "-o", str(bob.root / "report"))
    for _run_id, url in urls.values():
        page = bob.root / "report" / "staging" / "iris" / url.rsplit("/", 1)[1]
        assert page.with_suffix(".html").is_file(), page

    # The trail: every notebook in the bucket, none half-written, no secret in any; no
    # local trail in either working directory.
    keys = s3.keys()
    for step in ("01_copy", "02_verify", "03_migrate", "04_revert"):
        assert any(
            k.startswith("executed/staging/iris/") and k.endswith(step + ".ipynb") for k in keys
        )
    assert any(k.startswith("executed/prod/iris/") for k in keys)
    for key in keys:
        body = s3.get(key)
        assert SECRET_KEY.encode() not in body and DATABASE_PASSWORD.encode() not in body
        assert body.rstrip().endswith(b"}"), key
    for who in (alice, bob):
        assert not (who.root / "executed").exists()
        assert not (who.root / "s3:").exists()


@pytest.mark.long
def test_bucket_faults_refuse_before_and_keep_the_run_after(
    production: ProductionPath, s3: S3
) -> None:
    p = production
    alice = operator(p, s3, "alice")
    alice.ok("init", "-e", "staging")

    # The endpoint is down before 01: refused with one line, nothing changed, no run row.
    state = p.staging.state()
    s3.relay.down = True
    done = alice("run", "01_copy", "-m", "iris", "-e", "staging")
    assert done.returncode == 2, (done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert TRAIL in line and "AWS_ENDPOINT_URL" in line, line
    assert p.staging.state() == state
    assert p.staging.rows("SELECT id FROM zoo_ops_run WHERE step = '01_copy'") == []
    s3.relay.down = False
    assert s3.keys() == []

    alice.ok("run", "01_copy", "-m", "iris", "-e", "staging")
    alice.ok("run", "02_verify", "-m", "iris", "-e", "staging")
    before = app_proxies(p, "iris")

    # The bucket fails exactly when 03's final notebook is written, after it migrated.
    s3.relay.refuse_put = re.compile(rb"-03_migrate\.ipynb")
    done = alice("run", "03_migrate", "-m", "iris", "-e", "staging")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert s3.relay.refused, "the final PUT never reached the relay"
    run_id, outcome, url = run_row(p, "staging", "03_migrate")
    assert outcome == "trail-unsaved" and url.startswith(TRAIL)
    assert app_proxies(p, "iris") != before
    assert not [k for k in s3.keys() if k.endswith("-03_migrate.ipynb")]
    spooled = list((alice.root / "staging" / "trail-spool").rglob("*-03_migrate.ipynb"))
    assert [s.name for s in spooled] == [url.rsplit("/", 1)[1]]

    # 04 works from the journal meanwhile (the bucket still refuses 03's notebook).
    alice.ok("run", "04_revert", "-m", "iris", "-e", "staging", "-p", "forward_run", run_id)
    assert app_proxies(p, "iris") == before

    # The bucket is back: recover writes the kept notebook; status shows it.
    s3.relay.refuse_put = None
    done = alice.ok("trail", "recover", run_id, "-e", "staging")
    assert url in done.stdout
    assert url.split("zoo-trail/", 1)[1] in s3.keys()
    assert not list((alice.root / "staging" / "trail-spool").rglob("*.ipynb"))
    assert run_row(p, "staging", "03_migrate")[2] == url
    status = alice.ok("status", "-e", "staging", "-m", "iris").stdout
    assert url in status, status
    key = url.split("zoo-trail/", 1)[1]
    assert b'"recovered": true' not in s3.get(key)  # the run's own notebook, from the spool
    # With no spool copy, --force rebuilds it from the database and writes it to the bucket.
    alice.ok("trail", "recover", run_id, "-e", "staging", "--force")
    assert b'"recovered": true' in s3.get(key)

    # A write recorded by a command (no kernel) is kept in the bucket too.
    alice.ok("whitelist", "-e", "staging", "set", "resnet50", "--copy", "true")
    assert [k for k in s3.keys() if k.startswith("executed/staging/resnet50/")]


def test_an_executed_root_zoo_ops_cannot_serve_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zoo_ops.toml").write_text(
        '[env.gcs]\nexecuted_root = "gs://zoo-trail/executed"\n\n'
        '[env.nobucket]\nexecuted_root = "s3:///executed"\n\n'
        '[env.noslashes]\nexecuted_root = "s3:zoo-trail"\n'
    )
    env = {"ZOO_OPS_CONFIG": str(tmp_path / "zoo_ops.toml"), "PATH": "/usr/bin:/bin"}
    for name in ("gcs", "nobucket", "noslashes"):
        for args in (("run", "01_copy", "-m", "iris", "-e", name), ("status", "-e", name)):
            done = subprocess.run(
                [*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            (line,) = done.stderr.strip().splitlines()
            assert "executed_root" in line and "s3://BUCKET/PREFIX" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo_ops.toml"]


def test_trail_stores_keep_one_contract(tmp_path: Path, s3: S3) -> None:
    """A local folder and a bucket, through the registry: a write is read back whole,
    listings under ENV/MODEL hold only notebooks, probe proves the store writable."""
    for root in (str(tmp_path / "executed"), "s3://zoo-trail/contract"):
        store = store_for(root)
        a = join_url(root, "staging", "iris", "20260101T000000Z-01_copy.ipynb")
        b = join_url(root, "prod", "iris", "20260101T000001Z-01_copy.ipynb")
        stored = store.put_bytes(a, b'{"cells": []}')
        assert stored.size == 13 and store.get_bytes(a) == b'{"cells": []}'
        store.put_bytes(b, b"{}")
        store.put_bytes(join_url(root, "staging", "iris", "notes.txt"), b"x")
        assert set(store.listing(root, None, None)) == {a, b}
        assert set(store.listing(root, "staging", "iris")) == {a}
        assert store.stat(join_url(root, "staging", "iris", "gone.ipynb")) is None
        store.probe(root)
    s3.relay.down = True
    with pytest.raises(TrailUnwritable, match="AWS_ENDPOINT_URL"):
        store_for("s3://zoo-trail/contract").probe("s3://zoo-trail/contract")


def test_the_read_cache_is_never_stale(
    tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache follows the bucket: a rewritten object is read again (its ETag changed),
    a deleted one leaves the cache, an unreachable bucket is an error, not an old answer."""
    monkeypatch.setenv("ZOO_OPS_TRAIL_CACHE", str(tmp_path / "cache"))
    root = "s3://zoo-trail/executed"
    url = join_url(root, "staging", "iris", "20260101T000000Z-01_copy.ipynb")
    store_for(root).put_bytes(url, b'{"v": 1}')
    cached = sync(root) / "staging" / "iris" / "20260101T000000Z-01_copy.ipynb"
    assert cached.read_bytes() == b'{"v": 1}'
    s3.client().put_object(Bucket=s3.bucket, Key=url.split("zoo-trail/")[1], Body=b'{"v": 2}')
    assert local_copy(url).read_bytes() == b'{"v": 2}'
    s3.client().delete_object(Bucket=s3.bucket, Key=url.split("zoo-trail/")[1])
    sync(root, "staging")
    assert not cached.exists()
    with pytest.raises(FileNotFoundError):
        local_copy(url)
    s3.relay.down = True
    with pytest.raises(TrailStoreError):
        sync(root)
