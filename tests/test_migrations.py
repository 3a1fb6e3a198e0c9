"""PipelineRun moved from the ops app to documents in the migration state only: a database made
before the move keeps its runs, and the permissions given on them."""

from datetime import timedelta
from typing import Any

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

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


def test_copies_stored_before_the_constraint_are_kept_and_marked(transactional_db: None) -> None:
    """Racing uploads could store one file twice before migration 0006; it keeps every copy,
    the oldest of each owner's file as the one document, the later ones marked."""
    try:
        executor = MigrationExecutor(connection)
        old = _migrated(
            executor, [("documents", "0005_pipelinerun"), ("ops", "0002_delete_pipelinerun")]
        )
        users = old.get_model("auth", "User").objects
        owner, other = users.create(username="copies-owner"), users.create(username="copies-other")
        documents = old.get_model("documents", "Document").objects

        def stored(user: object, sha256: str, title: str) -> Any:
            document = documents.create(
                owner=user, title=title, original_name=f"{title}.pdf", sha256=sha256
            )
            # Upload order, whatever the clock's resolution.
            created = timezone.now() + timedelta(seconds=documents.count())
            documents.filter(id=document.id).update(created_at=created)
            return document

        first = stored(owner, "a" * 64, "first")
        second, third = stored(owner, "a" * 64, "second"), stored(owner, "a" * 64, "third")
        others = stored(other, "a" * 64, "other's")
        alone = stored(owner, "b" * 64, "alone")

        new = _migrated(
            MigrationExecutor(connection),
            [("documents", "0006_document_owner_sha256_uniq"), ("ops", "0002_delete_pipelinerun")],
        )
        marked = dict(
            new.get_model("documents", "Document").objects.values_list("id", "legacy_duplicate")
        )
        assert marked == {
            first.id: False,
            second.id: True,
            third.id: True,
            others.id: False,
            alone.id: False,
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_each_person_gets_a_personal_library_holding_their_documents_and_tags(
    transactional_db: None,
) -> None:
    """Migrations 0010-0013 on a database made before libraries: every person's documents and
    tags move to a personal library of theirs, which they own; copies stay as they were."""
    try:
        old = _migrated(
            MigrationExecutor(connection),
            [("documents", "0009_tags"), ("ops", "0002_delete_pipelinerun")],
        )
        users = old.get_model("auth", "User").objects
        ann, bob = users.create(username="lib-ann"), users.create(username="lib-bob")
        documents = old.get_model("documents", "Document").objects
        fields = {"original_name": "a.pdf", "sha256": "a" * 64}
        anns = documents.create(owner=ann, title="ann's", **fields)
        copy = documents.create(owner=ann, title="copy", legacy_duplicate=True, **fields)
        bobs = documents.create(owner=bob, title="bob's", **fields)
        tag = old.get_model("documents", "Tag").objects.create(owner=ann, name="Tax")
        anns.tags.add(tag)

        new = _migrated(
            MigrationExecutor(connection),
            [("documents", "0013_library_sha256_uniq"), ("ops", "0002_delete_pipelinerun")],
        )
        libraries = new.get_model("documents", "Library").objects
        personal = {library.personal_of_id: library for library in libraries.all()}
        assert set(personal) >= {ann.id, bob.id}
        moved = dict(new.get_model("documents", "Document").objects.values_list("id", "library"))
        assert moved[anns.id] == moved[copy.id] == personal[ann.id].id
        assert moved[bobs.id] == personal[bob.id].id
        tag_library = new.get_model("documents", "Tag").objects.get(id=tag.id).library_id
        assert tag_library == personal[ann.id].id
        memberships = new.get_model("documents", "Membership").objects
        assert memberships.get(library=personal[ann.id]).user_id == ann.id
        assert memberships.get(library=personal[ann.id]).role == "owner"
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
