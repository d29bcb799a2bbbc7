"""S3 for tests: moto's standalone server, the S3 wire protocol over HTTP on 127.0.0.1,
in its own process (no in-process patching: retouch talks to it like to any S3)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import subprocess
import sys
import uuid
from collections.abc import Iterator

from tests.backing import _wait_for_port, free_port, stop_process

REGION = "us-east-1"
# Any credentials do for moto; set in the environment, boto3's usual chain finds them.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "retouch-test-key",
    "AWS_SECRET_ACCESS_KEY": "retouch-test-secret",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata service
}


def moto_installed() -> bool:
    return importlib.util.find_spec("moto.server") is not None and importlib.util.find_spec("flask") is not None


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server for the duration of the context; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@functools.cache
def raw_client(endpoint: str):
    """A plain boto3 client on the server, for a test to look at the bucket directly."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def create_bucket(endpoint: str) -> str:
    """A new, empty bucket with a unique name; returns the name."""
    name = f"retouch-{uuid.uuid4().hex[:12]}"
    raw_client(endpoint).create_bucket(Bucket=name)
    return name
