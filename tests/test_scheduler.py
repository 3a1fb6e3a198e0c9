"""The scheduler's order and holds, on the database alone: whose turn comes next, that a
started document goes on before the next starts, that a live worker's document is never taken
and a dead worker's is, and what people are told while their documents wait."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from docdb.documents import scheduler, services
from docdb.documents.models import Document, Status
from docdb.documents.progress import documents_progress
from tests.helpers import user_make

pytestmark = pytest.mark.django_db


def _queued(owner: AbstractUser, name: str, *, pages: int = 0, **fields: object) -> Document:
    document = Document.objects.create(
        owner=owner,
        title=name,
        original_name=f"{name}.pdf",
        sha256=uuid.uuid4().hex,
        pages_total=pages,
        **fields,
    )
    # Upload order is creation order, a moment apart.
    Document.objects.filter(id=document.id).update(
        created_at=timezone.now() - timedelta(hours=1) + timedelta(seconds=Document.objects.count())
    )
    document.refresh_from_db()
    return document


def _turn_simulate(turn: scheduler.Turn) -> None:
    """What a turn does to the rows, one page per turn, without rendering anything."""
    document = Document.objects.get(id=turn.document_id)
    fields: dict[str, object] = {"pages_done": document.pages_done + 1}
    if document.status == Status.QUEUED:
        fields.update(status=Status.PROCESSING, started_at=timezone.now())
    if document.pages_done + 1 >= document.pages_total:
        fields["status"] = Status.READY
    Document.objects.filter(id=document.id).update(**fields)
    scheduler.hold_release(turn, work_seconds=1.0)


def _turns_until_idle() -> list[str]:
    order = []
    while (turn := scheduler.turn_claim(holder="worker-1")) is not None:
        order.append(Document.objects.get(id=turn.document_id).title)
        _turn_simulate(turn)
    return order


def test_people_take_turns_and_a_started_document_goes_on_first() -> None:
    alice, bob = user_make(), user_make()
    for name in ("a1", "a2", "a3"):
        _queued(alice, name, pages=3)
    _queued(bob, "b1", pages=3)
    # Bob uploaded last, yet his document alternates with Alice's from the second turn on;
    # each of Alice's documents finishes before her next one starts, in upload order.
    assert _turns_until_idle() == [
        *("a1", "b1") * 3,
        *("a2",) * 3,
        *("a3",) * 3,
    ]


def test_a_newcomer_waits_one_turn_behind_a_large_import() -> None:
    importer, newcomer = user_make(), user_make()
    for n in range(30):
        _queued(importer, f"import-{n}", pages=2)
    first = scheduler.turn_claim(holder="worker-1")
    assert first is not None
    _turn_simulate(first)
    _queued(newcomer, "newcomer", pages=1)
    second = scheduler.turn_claim(holder="worker-1")
    assert second is not None
    assert Document.objects.get(id=second.document_id).title == "newcomer"


def test_two_workers_hold_different_documents() -> None:
    owner = user_make()
    _queued(owner, "one", pages=2)
    _queued(owner, "two", pages=2)
    first = scheduler.turn_claim(holder="worker-1")
    second = scheduler.turn_claim(holder="worker-2")
    assert first is not None and second is not None
    assert first.document_id != second.document_id
    # Nothing else is left to claim while both hold theirs.
    assert scheduler.turn_claim(holder="worker-3") is None


def test_a_hold_is_taken_by_exactly_one_of_two_claims() -> None:
    document = _queued(user_make(), "contested", pages=2)
    now = timezone.now()
    assert scheduler._hold_take(document, holder="worker-1", now=now)
    # The second claim read the same row before the first one wrote it.
    assert not scheduler._hold_take(document, holder="worker-2", now=now)
    assert Document.objects.get(id=document.id).holder == "worker-1"


def test_a_live_workers_document_is_never_taken_however_long_it_waits() -> None:
    owner = user_make()
    long_ago = timezone.now() - timedelta(hours=10)
    held = _queued(
        owner,
        "slow range",
        pages=2,
        status=Status.PROCESSING,
        holder="worker-1/task",
        heartbeat_at=timezone.now(),
        turn_at=long_ago,
    )
    # A document queued for ten hours behind others is not lost either: it is simply next.
    Document.objects.filter(id=held.id).update(updated_at=long_ago, created_at=long_ago)
    waiting = _queued(owner, "queued for hours", pages=2)
    Document.objects.filter(id=waiting.id).update(updated_at=long_ago)
    turn = scheduler.turn_claim(holder="worker-2")
    assert turn is not None and turn.document_id == waiting.id and not turn.taken_over
    assert Document.objects.get(id=held.id).resume_count == 0
    assert Document.objects.get(id=waiting.id).resume_count == 0


def test_a_dead_workers_document_is_taken_over_and_counted() -> None:
    stale = timezone.now() - timedelta(seconds=settings.PIPELINE_HOLD_SECONDS + 1)
    document = _queued(
        user_make(),
        "orphan",
        pages=4,
        pages_done=2,
        status=Status.PROCESSING,
        started_at=stale,
        holder="dead-worker/task",
        heartbeat_at=stale,
    )
    turn = scheduler.turn_claim(holder="worker-2")
    assert turn is not None and turn.document_id == document.id and turn.taken_over
    document.refresh_from_db()
    assert (document.holder, document.resume_count, document.pages_done) == (
        "worker-2",
        1,
        2,
    )


def test_a_document_backing_off_waits_for_its_time() -> None:
    owner = user_make()
    _queued(owner, "backing off", pages=1, retry_at=timezone.now() + timedelta(minutes=1))
    assert scheduler.turn_claim(holder="worker-1") is None
    Document.objects.update(retry_at=timezone.now() - timedelta(seconds=1))
    assert scheduler.turn_claim(holder="worker-1") is not None


@pytest.mark.django_db(transaction=True)  # the heartbeat writes from its own thread
def test_the_heartbeat_keeps_a_long_turn_held(settings: object) -> None:
    document = _queued(user_make(), "long turn", pages=1)
    turn = scheduler.turn_claim(holder="worker-1")
    assert turn is not None
    Document.objects.filter(id=document.id).update(heartbeat_at=timezone.now() - timedelta(days=1))
    settings.PIPELINE_HEARTBEAT_SECONDS = 0.05  # type: ignore[attr-defined]
    with scheduler.hold_kept(turn):
        deadline = timezone.now() + timedelta(seconds=10)
        while Document.objects.get(id=document.id).heartbeat_at < timezone.now() - timedelta(
            seconds=5
        ):
            assert timezone.now() < deadline, "the heartbeat never came"
    assert scheduler.turn_claim(holder="worker-2") is None


@pytest.mark.django_db(transaction=True)  # the heartbeat writes from its own thread
def test_an_inline_ingest_keeps_its_hold_through_a_long_turn(
    settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`document_ingest` (management commands) beats like a worker's turn: a turn longer than
    the hold time is not taken by a worker for a dead one's."""
    document = _queued(user_make(), "inline", pages=1)
    settings.PIPELINE_HEARTBEAT_SECONDS = 0.05  # type: ignore[attr-defined]
    taken_by_another = []

    def long_turn(*, document_id: uuid.UUID, holder: str) -> bool:
        # The hold is as old as a dead worker's, and the turn goes on: only a heartbeat saves it.
        Document.objects.filter(id=document_id).update(
            heartbeat_at=timezone.now() - timedelta(seconds=settings.PIPELINE_HOLD_SECONDS + 1)  # type: ignore[attr-defined]
        )
        deadline = timezone.now() + timedelta(seconds=10)
        while Document.objects.get(id=document_id).heartbeat_at < timezone.now() - timedelta(
            seconds=1
        ):
            assert timezone.now() < deadline, "the heartbeat never came"
        taken_by_another.append(scheduler.turn_claim(holder="worker-2"))
        return False

    monkeypatch.setattr(services, "document_turn_run", long_turn)
    services.document_ingest(document_id=document.id)
    assert taken_by_another == [None]
    assert Document.objects.get(id=document.id).holder == ""  # released at the end


def test_people_see_their_own_queue_with_estimates_from_measured_rates() -> None:
    owner, other = user_make(), user_make()
    # Measured: 2 s of work per page.
    _queued(owner, "done", pages=5, pages_done=5, status=Status.READY, work_seconds=10.0)
    for n in range(3):
        _queued(other, f"someone else's {n}", pages=50)
    first = _queued(owner, "first", pages=4)
    second = _queued(owner, "second", pages=3)
    progress = documents_progress([first, second])
    # Places count only the person's own documents; the workers are shared by two people.
    assert progress[first.id]["queue_position"] == 1
    assert progress[second.id]["queue_position"] == 2
    assert progress[second.id]["waiting_behind"] == 1
    assert progress[second.id]["detail"] == "waiting behind 1 of your documents"
    assert progress[first.id]["eta_seconds"] == 4 * 2 * 2
    assert progress[second.id]["eta_seconds"] == (4 + 3) * 2 * 2
    assert "someone" not in str(progress)
    assert progress[first.id]["phase"] == "queued"


def test_an_estimate_does_not_grow_while_nothing_moves() -> None:
    owner = user_make()
    now = timezone.now()
    working = _queued(
        owner,
        "working",
        pages=10,
        pages_done=4,
        status=Status.PROCESSING,
        started_at=now - timedelta(seconds=60),
        work_seconds=8.0,
        holder="worker-1/task",
        heartbeat_at=now,
        turn_at=now - timedelta(seconds=3),
    )
    first = documents_progress([working])[working.id]
    assert first["phase"] == "processing" and first["status_label"] == "Processing"
    # 6 pages left at 2 s a page, 3 s of the current turn gone.
    assert first["eta_seconds"] == 6 * 2 - 3
    Document.objects.filter(id=working.id).update(
        turn_at=now - timedelta(seconds=30), heartbeat_at=timezone.now()
    )
    later = documents_progress([Document.objects.get(id=working.id)])[working.id]
    assert later["eta_seconds"] == 0
    # Between two turns it waits, and says so; it is not "processing".
    scheduler.hold_release(scheduler.Turn(document_id=working.id, holder="worker-1/task"))
    between = documents_progress([Document.objects.get(id=working.id)])[working.id]
    assert between["phase"] == "waiting" and between["status_label"] == "Waiting"
    assert "Cancel" in between["status_html"]


def test_another_persons_documents_never_change_my_place_in_the_queue() -> None:
    """However many documents someone else has, older than mine, started or held by a worker,
    my place and the count ahead of me are among my own documents only (list, API, statuses)."""
    me, other = user_make(), user_make()
    mine = [_queued(me, f"mine {n}", pages=3) for n in range(2)]

    def my_places() -> list[tuple[int, int]]:
        progress = documents_progress(list(Document.objects.filter(owner=me)))
        return [(progress[d.id]["queue_position"], progress[d.id]["waiting_behind"]) for d in mine]

    before = my_places()
    assert before == [(1, 0), (2, 1)]
    now = timezone.now()
    for n in range(10):
        _queued(other, f"theirs {n}", pages=40)
    _queued(
        other,
        "theirs, being worked on",
        pages=40,
        status=Status.PROCESSING,
        started_at=now - timedelta(days=2),
        holder="worker-1/task",
        heartbeat_at=now,
    )
    # Uploaded long before mine: a queue of everyone's documents would put them first.
    Document.objects.filter(owner=other).update(created_at=now - timedelta(days=1))
    assert my_places() == before
    for document in mine:
        assert "theirs" not in str(documents_progress([document]))
