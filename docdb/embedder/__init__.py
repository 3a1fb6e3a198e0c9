"""The embedder: a standalone HTTP service serving ColModernVBERT with the Weaviate Embeddings
protocol. It imports nothing from Django, so it runs as its own process (on a GPU machine if any).
"""
