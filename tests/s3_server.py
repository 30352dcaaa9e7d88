"""A real S3-protocol server for the object-storage tests: moto in server mode on a free local
port, with dummy credentials and `AWS_ENDPOINT_URL` pointed at it (s3fs and boto3 read both).
The bytes go over HTTP; nothing of mixer is mocked."""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_MAX_ATTEMPTS": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def s3_server() -> Iterator[str]:
    """Start moto on a free port and point the AWS environment at it; yields the endpoint URL."""
    server_mod = pytest.importorskip("moto.server", reason="the object-storage tests need moto[server]")
    pytest.importorskip("s3fs", reason="the object-storage tests need s3fs (mixer-toolkit[s3])")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client():
    import boto3

    return boto3.client("s3")


def upload_folder(folder: Path, bucket: str, prefix: str) -> None:
    """Copy a local folder to s3://bucket/prefix with boto3 (not mixer: the reference upload)."""
    c = client()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            c.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())


def objects(bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under s3://bucket/prefix/, by name relative to the prefix."""
    c = client()
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]
    return {k[len(prefix) + 1:]: c.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
