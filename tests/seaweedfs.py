"""A throwaway S3-compatible server for the tests of DOCDB_STORAGE=s3: SeaweedFS (Apache-2.0).

`weed mini` runs a whole SeaweedFS (master, volume server, filer, S3 gateway) in one process
and creates the bucket and the credentials given in its environment. Every port it opens is
chosen free here, its data sits in a temporary folder, and it is stopped at the end. The binary
comes from scripts/seaweedfs-binary.sh (cached outside the repository, like Weaviate's).
"""

import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from docdb.localstack import free_ports, server_spawn

REPO_DIR = Path(__file__).resolve().parent.parent
BUCKET = "docdb-test"


class SeaweedfsUnavailable(Exception):
    pass


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.root / "seaweedfs.log"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object's key in the bucket (under `prefix`)."""
        pages = self.client().get_paginator("list_objects_v2")
        found = pages.paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in found for item in page.get("Contents", []))

    def env(self) -> dict[str, str]:
        """DocDB's settings for this bucket."""
        return {
            "DOCDB_STORAGE": "s3",
            "DOCDB_S3_BUCKET": self.bucket,
            "DOCDB_S3_ENDPOINT_URL": self.endpoint_url,
            "DOCDB_S3_REGION": "us-east-1",
            "DOCDB_S3_ACCESS_KEY_ID": self.access_key,
            "DOCDB_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def storage(self) -> dict[str, Any]:
        """The same as Django's STORAGES["default"], for this test process."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.bucket,
                "endpoint_url": self.endpoint_url,
                "region_name": "us-east-1",
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "file_overwrite": True,
                "default_acl": None,
                "addressing_style": "path",
                "signature_version": "s3v4",
            },
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def seaweedfs_binary() -> str:
    result = subprocess.run(
        ["bash", str(REPO_DIR / "scripts" / "seaweedfs-binary.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SeaweedfsUnavailable(result.stderr)
    return result.stdout.strip()


def seaweedfs_start(*, timeout: float = 60) -> S3Server:
    root = Path(tempfile.mkdtemp(prefix="docdb-seaweedfs-"))
    (root / "data").mkdir()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    command = [
        seaweedfs_binary(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-bucket={BUCKET}",
        # Only S3: no WebDAV, admin UI, Iceberg or Lance servers, and nothing sent out.
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
    ]
    access_key, secret_key = "docdb-test", secrets.token_urlsafe(24)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
        # `weed mini` makes its admin identity from these, and the bucket from -bucket.
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3}",
        bucket=BUCKET,
        access_key=access_key,
        secret_key=secret_key,
        root=root,
        process=server_spawn(command, env, root / "seaweedfs.log"),
    )
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            log = server.log_tail()
            server.stop()
            raise SeaweedfsUnavailable(f"weed mini exited early:\n{log}")
        try:
            server.client().head_bucket(Bucket=BUCKET)
            return server
        except Exception:
            if time.monotonic() > deadline:
                log = server.log_tail()
                server.stop()
                raise SeaweedfsUnavailable(f"weed mini not ready in {timeout}s:\n{log}") from None
        time.sleep(0.3)
