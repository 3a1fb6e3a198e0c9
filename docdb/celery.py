import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docdb.settings")

# Workers read these queues in this order (the broker's `queue_order_strategy` is "priority"):
# the sweeper never waits behind ingestion, and maintenance the operations page asks for (a
# re-import, a repair) goes before the next turn of ingestion.
CONTROL_QUEUE = "control"
DEFAULT_QUEUE = "celery"
INGEST_QUEUE = "ingest"
QUEUES = (CONTROL_QUEUE, DEFAULT_QUEUE, INGEST_QUEUE)

app = Celery("docdb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_length(queue: str) -> int:
    """Messages waiting in a queue (not those a worker has taken)."""
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        # Not passive: Redis has no key for an empty queue, which a passive declare refuses.
        declared = connection.default_channel.queue_declare(queue=queue)
        return int(declared.message_count)
