"""Settings: one place that reads the environment.

Every setting has an embedded default so that ``make demo`` runs with nothing configured.
Under Airflow the same variables are set in the worker's environment (or the ledger URL comes
from the ``docpost_ledger`` Airflow connection, see ``docpost.ledger``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def _choice(var: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (the first is the default); a bad value is named in the error."""
    value = os.environ.get(var, allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{var}={value!r}: must be one of {', '.join(allowed)}")
    return value


#: What to do with a printable supplied PDF whose address window is not free (the first: default).
WINDOW_POLICIES = ("cover", "reject")


@dataclass(frozen=True)
class Settings:
    """docpost's settings, read from ``DOCPOST_*`` environment variables."""

    home: Path  # DOCPOST_HOME: working directory for embedded state (ledger file, demo stack)
    db_url: str  # DOCPOST_DB_URL: SQLAlchemy URL of the ledger
    schema_dir: Path  # DOCPOST_SCHEMA_DIR: the XSDs
    config_dir: Path  # DOCPOST_CONFIG_DIR: contact hierarchy, sending profiles, recipients
    bucket: str  # DOCPOST_BUCKET: the S3 bucket holding inbox/, rejected/, reports/
    s3_endpoint_url: str | None  # DOCPOST_S3_ENDPOINT_URL: moto/MinIO endpoint, None for AWS
    aws_conn_id: str  # DOCPOST_AWS_CONN_ID: the Airflow connection used under Airflow
    pseudonym_key: bytes  # DOCPOST_PSEUDONYM_KEY: HMAC key for recipient lookup hashes
    sender_cvr: str  # DOCPOST_SENDER_CVR: the municipality's CVR (MeMo Sender)
    sf1601_url: str | None  # DOCPOST_SF1601_URL: base URL of SF1601 (or the simulator)
    sf1601_cert: str | None  # DOCPOST_SF1601_CERT: client certificate (PEM) for mutual TLS
    sf1601_key: str | None  # DOCPOST_SF1601_KEY: its private key (PEM)
    sf1601_ca: str | None  # DOCPOST_SF1601_CA: CA bundle to verify the service (default: system)
    sf1601_timeout: float  # DOCPOST_SF1601_TIMEOUT: seconds per request
    sf1601_concurrency: int  # DOCPOST_SF1601_CONCURRENCY: parallel sends per chunk task
    sf1601_attempts: int  # DOCPOST_SF1601_ATTEMPTS: sends per letter within one task before RETRYING
    max_send_attempts: int  # DOCPOST_MAX_SEND_ATTEMPTS: tasks that may retry a letter before FAILED
    chunk_size: int  # DOCPOST_CHUNK_SIZE: letters per mapped chunk task
    claim_lease_seconds: float  # DOCPOST_CLAIM_LEASE_SECONDS: a killed task's claims expire after this
    max_faults: int  # DOCPOST_MAX_FAULTS: unexpected failures on one letter before it is quarantined
    window_content: str  # DOCPOST_WINDOW_CONTENT: supplied PDF with content in the window: cover | reject


def settings() -> Settings:
    """The settings from the current environment (read anew each call: cheap, and testable)."""
    home = _path("DOCPOST_HOME", Path.cwd() / ".docpost")
    return Settings(
        home=home,
        db_url=os.environ.get("DOCPOST_DB_URL") or f"sqlite:///{home / 'ledger.db'}",
        schema_dir=_path("DOCPOST_SCHEMA_DIR", PROJECT_ROOT / "schemas"),
        config_dir=_path("DOCPOST_CONFIG_DIR", PROJECT_ROOT / "config"),
        bucket=os.environ.get("DOCPOST_BUCKET", "docpost"),
        s3_endpoint_url=os.environ.get("DOCPOST_S3_ENDPOINT_URL") or None,
        aws_conn_id=os.environ.get("DOCPOST_AWS_CONN_ID", "docpost_s3"),
        pseudonym_key=os.environ.get(
            "DOCPOST_PSEUDONYM_KEY", "docpost-embedded-key-change-me-in-production"
        ).encode(),
        sender_cvr=os.environ.get("DOCPOST_SENDER_CVR", "29189846"),
        sf1601_url=os.environ.get("DOCPOST_SF1601_URL") or None,
        sf1601_cert=os.environ.get("DOCPOST_SF1601_CERT") or None,
        sf1601_key=os.environ.get("DOCPOST_SF1601_KEY") or None,
        sf1601_ca=os.environ.get("DOCPOST_SF1601_CA") or None,
        sf1601_timeout=float(os.environ.get("DOCPOST_SF1601_TIMEOUT", "30")),
        sf1601_concurrency=int(os.environ.get("DOCPOST_SF1601_CONCURRENCY", "8")),
        sf1601_attempts=int(os.environ.get("DOCPOST_SF1601_ATTEMPTS", "4")),
        max_send_attempts=int(os.environ.get("DOCPOST_MAX_SEND_ATTEMPTS", "12")),
        chunk_size=int(os.environ.get("DOCPOST_CHUNK_SIZE", "500")),
        claim_lease_seconds=float(os.environ.get("DOCPOST_CLAIM_LEASE_SECONDS", "600")),
        max_faults=int(os.environ.get("DOCPOST_MAX_FAULTS", "3")),
        window_content=_choice("DOCPOST_WINDOW_CONTENT", WINDOW_POLICIES),
    )
