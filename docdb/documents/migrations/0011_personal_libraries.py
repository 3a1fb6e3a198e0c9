"""Every person gets a personal library, which holds their existing documents and tags."""

from django.conf import settings
from django.db import migrations

PERSONAL_LIBRARY_NAME = "Personal"


def personal_libraries_fill(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Library = apps.get_model("documents", "Library")
    Membership = apps.get_model("documents", "Membership")
    Document = apps.get_model("documents", "Document")
    Tag = apps.get_model("documents", "Tag")
    for user in User.objects.all().iterator():
        library, _ = Library.objects.get_or_create(
            personal_of=user, defaults={"name": PERSONAL_LIBRARY_NAME}
        )
        Membership.objects.get_or_create(library=library, user=user, defaults={"role": "owner"})
        Document.objects.filter(owner=user, library__isnull=True).update(library=library)
        Tag.objects.filter(owner=user, library__isnull=True).update(library=library)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0010_libraries"),
    ]

    operations = [
        # Going back leaves the libraries: 0010's reverse drops them with their columns.
        migrations.RunPython(personal_libraries_fill, migrations.RunPython.noop),
    ]
