"""Where passages, vectors and keyword postings live: the local FAISS + bm25s store and its manifest."""
