"""Finding passages: dense, keyword and hybrid search fused by reciprocal rank."""
