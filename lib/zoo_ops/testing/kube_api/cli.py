"""The command line: ``python -m zoo_ops.testing.kube_api --port 0 --seed FILE
--kubeconfig OUT`` serves the stand-in until killed, printing its URL first."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import yaml

from zoo_ops.testing.kube_api.seed import default_seed_manifests
from zoo_ops.testing.kube_api.standin import DEFAULT_TOKEN, KubeApiStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_ops.testing.kube_api",
        description="Serve the Kubernetes API stand-in until killed; prints its URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML manifests to load (repeatable)",
    )
    parser.add_argument(
        "--default-seed",
        action="store_true",
        help="also load zoo-ops's default seed (namespace baseten, its settings ConfigMap, a CPU and a GPU node)",
    )
    parser.add_argument(
        "--kubeconfig", metavar="OUT", help="write a kubeconfig for the server here"
    )
    parser.add_argument("--context", default="standin")
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay before a Deployment becomes ready",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve https with a certificate from a CA made at start (in the kubeconfig); "
        "a bearer token is then required",
    )
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token clients must send")
    args = parser.parse_args(argv)

    standin = KubeApiStandIn(
        args.host,
        args.port,
        ready_delay_s=args.ready_delay,
        token=args.token,
        tls=args.tls,
    )
    try:
        if args.default_seed:
            standin.seed(default_seed_manifests())
        for path in args.seed:
            standin.seed_file(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: cannot seed the stand-in: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    standin.start()
    if args.kubeconfig:
        standin.write_kubeconfig(args.kubeconfig, context=args.context)
    print(standin.url, flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    standin.stop()
    return 0
