from django.db import models
from django.utils import timezone


class ConsistencyCheck(models.Model):
    """A consistency check's result, kept for the operations page, which shows the newest and
    never runs a check itself (it reads every page of every document)."""

    checked_at = models.DateTimeField(default=timezone.now)
    seconds = models.FloatField(default=0)
    # docdb.ops.reconcile.ConsistencyReport as JSON; None when the check could not run.
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [
            # The operations page reads the newest.
            models.Index(fields=["-checked_at"], name="consistencycheck_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"Consistency check {self.checked_at:%Y-%m-%d %H:%M}"
