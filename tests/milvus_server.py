"""A Milvus server for the tests: ``milvus-lite server`` on 127.0.0.1, a free port, a temporary data folder.

As a program it wraps a command (``make test`` runs the suite this way)::

    python tests/milvus_server.py python -m pytest

starts a server, runs the command with ``QA_MILVUS_URL`` naming it, and stops the server whatever
happens. ``python tests/milvus_server.py --serve DIR PORT TOKEN`` is the server itself with a token
check (Milvus Lite has no authentication; Milvus answers a wrong token with UNAUTHENTICATED, as this does).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"  # never 0.0.0.0: the tests' server is this machine's only
START_TIMEOUT = 60.0


def grpc_enabled() -> bool:
    """Whether the tests that need a Milvus server run: ``QA_MILVUS_URL`` names one (``make test`` starts it),
    or ``CI=true`` (a test then starts its own)."""
    return bool(os.environ.get("QA_MILVUS_URL")) or os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class MilvusServer:
    """One ``milvus-lite server`` process; :meth:`start` waits until it answers, :meth:`kill` and
    :meth:`stop` end it (SIGKILL, or SIGTERM then SIGKILL); a stopped one can be started again on the
    same port and data.

    Args:
        data_dir: its data folder (kept between restarts).
        token: when given, it refuses calls without this token.
    """

    def __init__(self, data_dir: Path, token: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.token = token
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "MilvusServer":
        if self.token is None:
            command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                       "--host", HOST, "--port", str(self.port)]
        else:
            command = [sys.executable, __file__, "--serve", str(self.data_dir), str(self.port), self.token]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited ({self.process.returncode}): "
                                   f"{self.process.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"milvus-lite server did not listen on {self.url} within {START_TIMEOUT:.0f}s")

    def kill(self) -> None:
        """End it at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None


def _serve_with_token(data_dir: str, port: int, token: str) -> None:
    """Milvus Lite's gRPC server behind a check of the ``authorization`` header pymilvus sends."""
    import base64
    from concurrent import futures

    import grpc
    from pymilvus.grpc_gen import milvus_pb2_grpc

    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from milvus_lite.db import MilvusLite

    expected = base64.b64encode(token.encode()).decode()

    class TokenCheck(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            sent = dict(details.invocation_metadata or ()).get("authorization")
            if sent == expected:
                return continuation(details)

            def refuse(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "auth check failure, please check username, "
                                                                "password or token")

            return grpc.unary_unary_rpc_method_handler(refuse)

    db = MilvusLite(data_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[TokenCheck()])
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    server.add_insecure_port(f"{HOST}:{port}")
    server.start()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=2)
        db.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        _serve_with_token(argv[1], int(argv[2]), argv[3])
        return 0
    if not argv:
        print("usage: python tests/milvus_server.py COMMAND...", file=sys.stderr)
        return 2
    data = Path(tempfile.mkdtemp(prefix="qa-milvus-"))
    server = MilvusServer(data)
    try:
        server.start()
        print(f"milvus-lite server at {server.url} (data in {data})", file=sys.stderr)
        return subprocess.call(argv, env={**os.environ, "QA_MILVUS_URL": server.url})
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
