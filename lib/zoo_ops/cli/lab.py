"""`zoo-ops lab [-e ENV] [--port N] [--no-browser]`: JupyterLab on ``explore.ipynb``.

The server listens on 127.0.0.1 only, with a token of 32 random bytes handed to it in
``$JUPYTER_TOKEN`` (not on its command line, where ``ps`` shows it); it serves the
project folder (the one holding the configuration, else the working directory) and
opens ``explore.ipynb`` there, copied from zoo-ops's checkout when the folder has none.
Kernels inherit ``$ZOO_OPS_ENV`` (the ``-e`` environment) and ``$ZOO_OPS_CONFIG``.
The URL with the token is printed once the server answers. Ctrl-C stops the server
(SIGTERM: Jupyter's own clean shutdown, no confirmation prompt) and exits 0.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from zoo_ops.adapters.polling import poll
from zoo_ops.cli.options import add_env_option, env_name
from zoo_ops.errors import BadInput, StepFailed

ENV_VAR = "ZOO_OPS_ENV"  # read by zoo_ops.explore.session
NOTEBOOK = "explore.ipynb"
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def port_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"--port {value!r}: give a port from 1 to 65535")
    return int(value)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "lab",
        help="JupyterLab with the zoo-ops kernel, opened on explore.ipynb (read-only session)",
        description="Start JupyterLab on 127.0.0.1 with a generated token and print its URL.",
    )
    add_env_option(p, 1)
    p.add_argument("--port", type=port_number, default=None, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(handler=run_lab)


def checkout_notebook() -> Path:
    """``explore.ipynb`` at the root of zoo-ops's source checkout (lib/zoo_ops/../..)."""
    return Path(__file__).resolve().parents[3] / NOTEBOOK


def project_folder() -> Path:
    from zoo_ops.config import config_path

    return config_path().resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def run_lab(args: argparse.Namespace) -> int:
    from zoo_ops.config import config_path, load_environment
    from zoo_ops.kernel import ensure_kernel

    name = load_environment(env_name(args)).name
    folder = project_folder()
    notebook = folder / NOTEBOOK
    if not notebook.exists():
        source = checkout_notebook()
        if not source.exists():
            raise BadInput(f"no {NOTEBOOK} in {folder} nor in zoo-ops's checkout; copy one there")
        shutil.copyfile(source, notebook)
    ensure_kernel()
    port = args.port or free_port()
    token = secrets.token_urlsafe(32)
    env = {**os.environ, ENV_VAR: name, "JUPYTER_TOKEN": token}
    if config_path().exists():
        env["ZOO_OPS_CONFIG"] = str(config_path().resolve())
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={folder}",
        "--MappingKernelManager.default_kernel_name=zoo-ops",
        f"--LabApp.default_url=/lab/tree/{NOTEBOOK}",
        # Warnings and errors only: the URL zoo-ops prints is the line to look for.
        "--ServerApp.log_level=WARN",
    ]
    if args.no_browser:
        argv.append("--no-browser")
    if os.geteuid() == 0:
        # Containers run as root; the server listens on 127.0.0.1 with a token regardless.
        argv.append("--ServerApp.allow_root=True")
    # A session of its own: the terminal's Ctrl-C reaches zoo-ops only, which stops the
    # server with SIGTERM instead of Jupyter's "Shutdown this server (y/[n])?" prompt.
    server = subprocess.Popen(argv, env=env, cwd=folder, start_new_session=True)
    # SIGTERM and SIGHUP stop the server as Ctrl-C does: it is in a session of its own,
    # so a zoo-ops killed without stopping it would leave it (and its kernels) running.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)
    try:
        base = f"http://{HOST}:{port}"
        _wait_until_up(server, f"{base}/api/status?token={token}")
        print(f"zoo-ops lab: environment {name!r}, {folder}", flush=True)
        print(f"{base}/lab/tree/{NOTEBOOK}?token={token}", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        _stop(server)
        print("zoo-ops lab: stopped", file=sys.stderr)
        return 0
    finally:
        if server.poll() is None:
            _stop(server)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_until_up(server: subprocess.Popen[bytes], status_url: str) -> None:
    def answering() -> bool | None:
        if server.poll() is not None:
            raise StepFailed(
                f"JupyterLab exited with {server.returncode} before answering; "
                "see its messages above (is the port taken? try --port)"
            )
        try:
            with urllib.request.urlopen(status_url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        return None

    if poll(answering, timeout_s=START_TIMEOUT_S, first_s=0.2, cap_s=0.2) is None:
        raise StepFailed(f"JupyterLab did not answer within {START_TIMEOUT_S:.0f} s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
