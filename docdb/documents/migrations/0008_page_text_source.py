from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def pages_without_text_mark(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Pages indexed before OCR took their text from the text layer, or had none."""
    apps.get_model("documents", "Page").objects.filter(text="").update(text_source="none")


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0007_damaged_pages_and_error_code"),
    ]

    operations = [
        migrations.AddField(
            model_name="page",
            name="text_source",
            field=models.CharField(
                choices=[("layer", "Text layer"), ("ocr", "OCR"), ("none", "None")],
                default="layer",
                max_length=8,
            ),
        ),
        migrations.RunPython(pages_without_text_mark, migrations.RunPython.noop),
    ]
