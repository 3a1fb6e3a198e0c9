import uuid

from django.db import migrations, models


def search_id(document_id: uuid.UUID, number: int) -> uuid.UUID:
    """What docdb.weaviate_store.page_uuid computes (weaviate.util.generate_uuid5), kept here
    as it is today: a migration must not change with the code (tests compare the two)."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{document_id}:{number}")


def pages_fill(apps, schema_editor):  # type: ignore[no-untyped-def]
    Page = apps.get_model("documents", "Page")
    batch = []
    for page in Page.objects.filter(search_id=None).only("id", "document_id", "number").iterator():
        page.search_id = search_id(page.document_id, page.number)
        batch.append(page)
        if len(batch) == 1000:
            Page.objects.bulk_update(batch, ["search_id"])
            batch = []
    Page.objects.bulk_update(batch, ["search_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0002_document_resume_count"),
    ]

    operations = [
        migrations.AddField(
            model_name="page",
            name="search_id",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.RunPython(pages_fill, migrations.RunPython.noop),
    ]
