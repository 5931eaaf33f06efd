"""Fixtures shared by every layer: real PostgreSQL, a real moto S3 server, the reference data."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from docpost_testbench.stack import use_bench_key

use_bench_key()  # the tests, like the demo, run on the bench's pseudonym key (the product has none)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "fixtures" / "reference"  # third-party samples, see its PROVENANCE.md
PG_ADMIN_URL = os.environ.get("DOCPOST_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The real third-party samples in tests/fixtures/reference (tests only; product code never).

    They are part of the repository: a missing folder is an error, never a reason to skip."""
    assert REFERENCE.is_dir(), f"reference fixtures missing at {REFERENCE}: they are tracked in git"
    return REFERENCE


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A scratch PostgreSQL database on 127.0.0.1:5432 for this test session, dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"docpost_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A real moto S3 server over HTTP on loopback for this test session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket on the moto server; DOCPOST_* point at it for the test."""
    import boto3

    bucket = f"docpost-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="eu-west-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    monkeypatch.setenv("DOCPOST_BUCKET", bucket)
    monkeypatch.setenv("DOCPOST_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return bucket
