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
from typing import Self

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
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # one made for another test module's server points elsewhere
    try:
        yield endpoint
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
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


class FaultProxy:
    """An HTTP proxy in front of the S3 server that fails the requests `fault(method, path)`
    picks: "503" answers 503 SlowDown (as S3 does under load), "drop" closes the connection
    without an answer (a server going away part-way); None forwards the request. Every request
    and every fault is counted (`requests`, `faults`), so a test can say what really happened."""

    def __init__(self, target: str) -> None:
        import http.server
        import threading
        from urllib.parse import urlsplit

        self.target = urlsplit(target).netloc
        self.fault = lambda method, path: None
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                import http.client

                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                proxy.requests.append((self.command, self.path))
                what = proxy.fault(self.command, self.path)
                if what == "drop":
                    proxy.faults.append((self.command, self.path, what))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if what == "503":
                    proxy.faults.append((self.command, self.path, what))
                    err = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                conn = http.client.HTTPConnection(proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def endpoint_at(url: str) -> Iterator[None]:
    """Point the AWS environment (and s3fs's cached filesystems) at `url` for a while."""
    import s3fs

    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
        s3fs.S3FileSystem.clear_instance_cache()
