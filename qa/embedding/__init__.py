"""Sentence embeddings: the encoder protocol and its torch and ONNX Runtime backends."""
