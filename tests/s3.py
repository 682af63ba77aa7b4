"""A real S3-compatible server (moto) on 127.0.0.1 for the tests that use buckets: storage, credentials, runs."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

needs_moto = pytest.mark.skipif(importlib.util.find_spec("moto") is None, reason="needs moto[server]")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(**environment: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **environment}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the S3 server did not start")


def make_buckets(url: str, key: str, secret: str, *names: str) -> None:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )
    for bucket in names:
        client.create_bucket(Bucket=bucket)
