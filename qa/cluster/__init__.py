"""Indexing on a Dask cluster: documents listed here, read, chunked and embedded on the workers.

- :mod:`qa.cluster.connect`: the cluster a ``--cluster`` value names (``local`` or ``tcp://HOST:PORT``);
- :mod:`qa.cluster.tasks`: what runs on a worker (each loads the encoder once per process);
- :mod:`qa.cluster.build`: the client's side, into any store: the local folder and Milvus Lite's
  embedded file are written here from the gathered vectors, a Milvus server by the workers directly.

Nothing here is imported unless ``--cluster`` is given; it needs ``pip install 'qa[cluster]'``.
"""
