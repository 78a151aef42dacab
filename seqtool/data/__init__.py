"""Data: tokenizers, the corpus catalog, text reading and batching."""
