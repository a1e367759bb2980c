"""Semantic product search: embeddings, the hybrid index and its evaluation."""
