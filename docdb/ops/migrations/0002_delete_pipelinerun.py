"""PipelineRun now belongs to the documents app, which took over its table as it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("documents", "0005_pipelinerun"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="PipelineRun")],
        ),
    ]
