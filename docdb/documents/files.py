"""Where a document's files are kept: its original PDF, page images and thumbnails.

Everything goes through Django's default storage: the local folder DOCDB_MEDIA_DIR (the
default), or a private S3 bucket (DOCDB_STORAGE=s3, django-storages), which web and workers on
many hosts share instead of a disk. Names come from the primary key; the uploaded name is only
displayed. Poppler and PDFium read local files: `original_local` gives them the stored file
itself when the storage is a local folder, else a copy in a temporary folder of its own.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages

from docdb import pdf

COPY_CHUNK_BYTES = 1 << 20


def document_prefix(document_id: uuid.UUID) -> str:
    return f"documents/{document_id}"


def original_name(document_id: uuid.UUID) -> str:
    return f"{document_prefix(document_id)}/original.pdf"


def pages_folder(document_id: uuid.UUID) -> str:
    return f"{document_prefix(document_id)}/pages"


def thumbnails_folder(document_id: uuid.UUID) -> str:
    return f"{document_prefix(document_id)}/thumbnails"


def page_file(number: int) -> str:
    """A page image's or thumbnail's name in its folder."""
    return f"{number:05d}.jpg"


def page_image_name(document_id: uuid.UUID, number: int) -> str:
    return f"{pages_folder(document_id)}/{page_file(number)}"


def page_thumbnail_name(document_id: uuid.UUID, number: int) -> str:
    return f"{thumbnails_folder(document_id)}/{page_file(number)}"


def local_path(name: str) -> Path | None:
    """The file's path when the storage is a local folder; None for a bucket."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        return None


def stored_path(name: str) -> Path:
    """The file's path on a local storage; NotImplementedError with a bucket."""
    return Path(default_storage.path(name))


def file_write(name: str, data: bytes) -> None:
    """Store `data` under `name`, replacing what was there. A reader sees the old file or the
    new one, never part of one: a rename on disk, one PUT in a bucket (S3 replaces whole)."""
    path = local_path(name)
    if path is not None:
        pdf.file_write_atomic(path, data)
    else:
        default_storage.save(name, ContentFile(data))


def file_store(name: str, source: Path) -> None:
    """Store the local file `source` under `name`, replacing what was there, as `file_write`."""
    path = local_path(name)
    if path is None:
        with source.open("rb") as handle:
            default_storage.save(name, File(handle))
        return
    # Copied next to its place first: os.replace is atomic within one file system.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=path.suffix)
    os.close(fd)
    try:
        shutil.copyfile(source, temp_name)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def file_exists(name: str) -> bool:
    return bool(default_storage.exists(name))


def file_read(name: str) -> bytes:
    """The stored file's bytes; FileNotFoundError when there is none."""
    with default_storage.open(name, "rb") as handle:
        return bytes(handle.read())


def file_open(name: str) -> File:
    """The stored file, open for reading; FileNotFoundError when there is none."""
    return default_storage.open(name, "rb")


def folder_files(folder: str) -> set[str]:
    """The names of the files directly in a stored folder (one listing, not a request per
    file); empty when there is no such folder."""
    try:
        _folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return set()
    return set(files)


@contextmanager
def original_local(name: str) -> Iterator[Path]:
    """A local path of the stored original `name` for the PDF engines, for the `with` block:
    the stored file on a local storage, else a copy in a temporary folder removed afterwards
    (a worker keeps no file outside it, so it needs no disk of its own)."""
    path = local_path(name)
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="docdb-original-") as folder:
        copy = Path(folder) / "original.pdf"
        try:
            with default_storage.open(name, "rb") as stored, copy.open("wb") as out:
                shutil.copyfileobj(stored, out, COPY_CHUNK_BYTES)
        except FileNotFoundError:
            pass  # no copy: the engines report the original missing, as on a local disk
        yield copy


def document_files_delete(document_id: uuid.UUID) -> None:
    """Remove every stored file of the document; nothing happens when there is none."""
    prefix = document_prefix(document_id)
    path = local_path(prefix)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        return
    # Imported here: boto3 takes a while to import, and only a bucket needs it.
    from storages.backends.s3 import S3Storage

    storage = storages["default"]
    if not isinstance(storage, S3Storage):
        raise NotImplementedError(f"deleting a folder from {type(storage).__name__}")
    # Batched: one request per 1 000 objects, not one per page image and thumbnail.
    storage.bucket.objects.filter(Prefix=f"{prefix}/").delete()
