"""PipelineRun moved from the ops app to documents in the migration state only: a database made
before the move keeps its runs, and the permissions given on them."""

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

MOVE_BEFORE = [("documents", "0004_document_turns"), ("ops", "0001_initial")]
MOVE_AFTER = [("documents", "0005_pipelinerun"), ("ops", "0002_delete_pipelinerun")]


def _migrated(executor: MigrationExecutor, targets: list[tuple[str, str]]) -> Apps:
    """Migrate documents and ops to these targets, every other app to its latest migration."""
    others = [
        node for node in executor.loader.graph.leaf_nodes() if node[0] not in {"documents", "ops"}
    ]
    executor.migrate(others + targets)
    return executor.loader.project_state(others + targets).apps


def test_runs_and_their_permissions_stay_when_the_model_moves_to_documents(
    transactional_db: None,
) -> None:
    try:
        old = _migrated(MigrationExecutor(connection), MOVE_BEFORE)
        # As a database made before the move has them (going back here relabels the test
        # database's own).
        content_type, _ = old.get_model("contenttypes", "ContentType").objects.get_or_create(
            app_label="ops", model="pipelinerun"
        )
        permission, _ = old.get_model("auth", "Permission").objects.get_or_create(
            content_type=content_type,
            codename="view_pipelinerun",
            defaults={"name": "Can view pipeline run"},
        )
        run = old.get_model("ops", "PipelineRun").objects.create(
            task_id="made-before-the-move", kind="repair", state="succeeded", summary="kept"
        )

        new = _migrated(MigrationExecutor(connection), MOVE_AFTER)
        runs = new.get_model("documents", "PipelineRun").objects
        moved = runs.get(id=run.id)
        assert (moved.task_id, moved.kind, moved.summary) == (
            "made-before-the-move",
            "repair",
            "kept",
        )
        assert runs.create(task_id="made-after-the-move").id > run.id
        permission = new.get_model("auth", "Permission").objects.get(id=permission.id)
        assert permission.content_type.app_label == "documents"
        content_types = new.get_model("contenttypes", "ContentType").objects
        assert not content_types.filter(app_label="ops", model="pipelinerun").exists()
    finally:
        # Later tests in this session need every table of the latest migrations back.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
