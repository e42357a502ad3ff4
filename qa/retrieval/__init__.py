"""Finding passages: dense, keyword and hybrid search fused by reciprocal rank.

The modes are named here rather than in :mod:`qa.retrieval.retriever`, so that the command line offers them
without loading the search code.
"""

MODES = ("hybrid", "dense", "bm25")  # the default first
DEFAULT_MODE = MODES[0]  # dense and keyword search fused by reciprocal rank
