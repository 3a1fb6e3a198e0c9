"""One document per owner and checksum. Concurrent uploads could store a file twice before; the
copies are kept (deleting people's documents is not a migration's to do) and every one but the
oldest of each owner's file is marked `legacy_duplicate`, which the constraint leaves out."""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.db.models import Count


def duplicates_mark(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    documents = apps.get_model("documents", "Document").objects
    groups = (
        documents.values("owner_id", "sha256")
        .annotate(copies=Count("id"))
        .filter(copies__gt=1)
        .order_by()
    )
    for group in groups:
        copies = documents.filter(owner_id=group["owner_id"], sha256=group["sha256"])
        later = list(copies.order_by("created_at", "id").values_list("id", flat=True)[1:])
        documents.filter(id__in=later).update(legacy_duplicate=True)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0005_pipelinerun"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="legacy_duplicate",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(duplicates_mark, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                condition=models.Q(("legacy_duplicate", False)),
                fields=("owner", "sha256"),
                name="document_owner_sha256_uniq",
            ),
        ),
    ]
