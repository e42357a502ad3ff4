"""The Milvus store (Lite embedded, Lite server, Standalone, Distributed): opened and searched by
:mod:`qa.stores.milvus.store`, built and updated by :mod:`qa.stores.milvus.build`."""
