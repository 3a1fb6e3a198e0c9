"""DocDB: self-hosted visual document retrieval.

The package root stays import-free so that `python -m docdb.embedder` needs neither Django nor
Celery; the Celery app lives in `docdb.celery` and the tasks bind to it explicitly.
"""
