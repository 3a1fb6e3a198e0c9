"""PipelineRun moves here from the ops app: in the migration state only, since the table keeps
its name (`ops_pipelinerun`) and its rows. Its content type moves with it, so the permissions
given on pipeline runs and the admin's history of them stay attached."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def _content_type_move(apps: StateApps, old_label: str, new_label: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    # A migrate run with this code may already have made the new one (post_migrate): keep it.
    if not content_types.filter(app_label=new_label, model="pipelinerun").exists():
        content_types.filter(app_label=old_label, model="pipelinerun").update(app_label=new_label)


def content_type_forwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _content_type_move(apps, "ops", "documents")


def content_type_backwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _content_type_move(apps, "documents", "ops")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("documents", "0004_document_turns"),
        ("ops", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PipelineRun",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("task_id", models.CharField(max_length=64)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("process", "Process"),
                                    ("reimport", "Re-import"),
                                    ("repair", "Repair"),
                                ],
                                default="process",
                                max_length=20,
                            ),
                        ),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("retrying", "Waiting to retry"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("skipped", "Skipped"),
                                ],
                                default="queued",
                                max_length=20,
                            ),
                        ),
                        ("queued_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("worker", models.CharField(blank=True, max_length=200)),
                        ("summary", models.CharField(blank=True, max_length=500)),
                        ("error", models.TextField(blank=True)),
                        (
                            "document",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="runs",
                                to="documents.document",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "ops_pipelinerun",
                        "ordering": ["-queued_at"],
                        "indexes": [
                            models.Index(
                                fields=["document", "-queued_at"], name="pipelinerun_document_idx"
                            ),
                            models.Index(
                                fields=["state", "queued_at"], name="pipelinerun_state_idx"
                            ),
                            models.Index(fields=["-queued_at"], name="pipelinerun_queued_idx"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("task_id",), name="pipelinerun_task_id_uniq"
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_type_forwards, content_type_backwards),
    ]
