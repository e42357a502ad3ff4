"""The Dask cluster a ``--cluster`` value names, and the errors of reaching it.

``local`` starts a :class:`distributed.LocalCluster` on 127.0.0.1 (one single-threaded worker process
per core, its HTTP servers on 127.0.0.1 too) for the length of the build; ``tcp://HOST:PORT`` (or ``tls://``) connects to
a running scheduler (``dask scheduler``, dask-kubernetes, dask-jobqueue: see docs/scaling.md).

Example:
    >>> with cluster_client("local") as client:
    ...     sum(client.nthreads().values())
    2
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Iterator

from qa.errors import InvalidInput, UserError
from qa.onnx_runtime import usable_cores

logger = logging.getLogger(__name__)

LOCAL = "local"
# The local scheduler's and workers' HTTP servers (the dashboard, when bokeh is installed): this machine
# only, any free port (None would still bind Dask's default 8787, and a second cluster would collide).
LOCAL_HTTP = "127.0.0.1:0"
CONNECT_TIMEOUT_S = 10  # a scheduler that doesn't answer in this long is taken as unreachable
WORKERS_TIMEOUT_S = 60  # how long a reachable scheduler may take to have its first worker
_SCHEDULER = re.compile(r"^(tcp|tls)://[^\s/:]+(:\d+)?$")


class ClusterError(UserError, RuntimeError):
    """The cluster can't be reached, has no workers, or its workers can't do the build's work."""


def check_cluster(value: str) -> str:
    """``value`` if it names a cluster (``local`` or ``tcp://HOST:PORT``).

    Raises:
        InvalidInput: anything else.
    """
    if value == LOCAL or _SCHEDULER.match(value):
        return value
    raise InvalidInput(f"--cluster {value!r} names no cluster: pass 'local' (workers on this machine) or the "
                       "address of a running Dask scheduler, tcp://HOST:PORT.")


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


@contextlib.contextmanager
def cluster_client(value: str, workers: int | None = None) -> Iterator:
    """A connected ``distributed.Client`` for ``value``; a local cluster is stopped on leaving.

    Args:
        value: ``local`` or a scheduler address (see :func:`check_cluster`).
        workers: a local cluster's worker processes (default: one per core).

    Raises:
        ClusterError: Dask is not installed, the scheduler can't be reached, or it has no workers.
    """
    check_cluster(value)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--cluster needs Dask: install it with pip install 'qa[cluster]'.") from None
    if value == LOCAL:
        with LocalCluster(host="127.0.0.1", n_workers=workers or usable_cores(), threads_per_worker=1,
                          processes=True, dashboard_address=LOCAL_HTTP,
                          worker_dashboard_address=LOCAL_HTTP) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(value, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"Cannot reach the Dask scheduler at {value} ({first_line(err)}): start it "
                           "(dask scheduler), or check the address.") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(f"The Dask scheduler at {value} has no workers after {WORKERS_TIMEOUT_S} s: start "
                               f"some with dask worker {value}.") from None
        yield client
