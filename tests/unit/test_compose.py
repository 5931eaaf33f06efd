"""docker-compose.yaml is valid for docker-compose and wires the stack the way docs/operations.md says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKER_COMPOSE = shutil.which("docker-compose")

needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")


DEV_ENV = ROOT / "docker" / "dev.env"
INIT_SCRIPT = ROOT / "docker" / "airflow-init.sh"
#: what a production deployment sets (no docker/dev.env): every required variable, nothing else
PRODUCTION_ENV = {
    "AIRFLOW_ADMIN_PASSWORD": "a", "AIRFLOW_DB_PASSWORD": "b", "AIRFLOW_FERNET_KEY": "c",
    "AIRFLOW_SECRET_KEY": "d", "AIRFLOW_JWT_SECRET": "e", "MINIO_ROOT_PASSWORD": "f",
    "DOCPOST_DB_PASSWORD": "g", "DOCPOST_PSEUDONYM_KEY": "h" * 16, "DOCPOST_SENDER_CVR": "29189846",
    "RABBITMQ_PASSWORD": "i", "SF1601_URL": "https://sf1601.example.dk/", "SMTP_HOST": "smtp.soeby.dk",
    "SF1601_SECRET_CERT": "/etc/docpost/oces.crt", "SF1601_SECRET_KEY": "/etc/docpost/oces.key",
    "SF1601_SECRET_CA": "/etc/docpost/sf1601-ca.pem",
}


def _compose(*args: str, file: Path = COMPOSE, env_file: Path | None = DEV_ENV,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """docker-compose on ``file``: with docker/dev.env by default, ``env`` instead of inherited variables."""
    options = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run([DOCKER_COMPOSE, "-f", str(file), *options, *args], cwd=file.parent,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], **(env or {})})


@needs_compose
def test_compose_file_passes_docker_compose_config():
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr


@needs_compose
def test_the_check_catches_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    restart: always\n", "    restart: [always]\n", 1))
    done = _compose("config", "-q", file=broken)
    assert done.returncode != 0


@needs_compose
def test_resolved_services_are_wired_to_minio_postgres_and_the_simulator():
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"postgres", "redis", "minio", "minio-init", "sf1601-simulator", "mailsink", "airflow-init",
            *AIRFLOW_SERVICES} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        conn = json.loads(env["AIRFLOW_CONN_DOCPOST_S3"])
        assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == "http://minio:9000"
        assert env["DOCPOST_AWS_CONN_ID"] == "docpost_s3"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["DOCPOST_DB_URL"].startswith("postgresql+psycopg://")
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-apiserver"]["ports"] == [{"published": 8080, "target": 8080}]
    assert services["sf1601-simulator"]["command"][:2] == ["docpost", "simulator"]
    # What comes back: RabbitMQ stands in for the Beskedfordeler, the PostModtag endpoint is a service,
    # and the simulator plays the other side of both.
    assert {"rabbitmq", "postmodtag"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["DOCPOST_AMQP_URL"].startswith("amqp://") and env["DOCPOST_AMQP_URL"].endswith("@rabbitmq:5672/BF")
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert services["postmodtag"]["command"][:3] == ["docpost", "postmodtag", "serve"]
    assert "healthcheck" in services["postmodtag"] and "healthcheck" in services["rabbitmq"]
    sim = services["sf1601-simulator"]["command"]
    assert sim[sim.index("--postmodtag-url") + 1] == "http://postmodtag:8606"
    assert sim[sim.index("--amqp-url") + 1].endswith("@rabbitmq:5672/BF")
    # The bench (the simulator) has its own image; every Airflow component runs the product image.
    assert services["sf1601-simulator"]["build"]["target"] == "testbench"
    assert all("target" not in services[name]["build"] for name in AIRFLOW_SERVICES)


def test_image_is_the_official_airflow_release_the_lock_pins():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    assert "apache-airflow==3.3.2" in lock
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    # The product stage installs the production lock, then docpost itself non-editable, no bench.
    product = dockerfile.split("AS testbench")[0]
    assert "pip install --no-cache-dir -r /opt/docpost/docker/requirements.lock" in product
    assert "pip install --no-cache-dir --no-deps /opt/docpost\n" in product
    assert " -e " not in dockerfile and "testbench" not in product.split("AS product", 1)[1]
    assert dockerfile.rstrip().endswith("FROM product")  # the default build is the product image


@needs_compose
def test_production_secrets_are_required_outside_the_development_env_file():
    done = _compose("config", "-q", env_file=None)
    assert done.returncode != 0 and "set AIRFLOW_DB_PASSWORD" in done.stderr  # no public default
    missing_one = {k: v for k, v in PRODUCTION_ENV.items() if k != "AIRFLOW_SECRET_KEY"}
    done = _compose("config", "-q", env_file=None, env=missing_one)
    assert done.returncode != 0 and "set AIRFLOW_SECRET_KEY" in done.stderr
    assert _compose("config", "-q", env_file=None, env=PRODUCTION_ENV).returncode == 0
    # the development values live in docker/dev.env only, never as defaults in the compose file
    dev_values = [line.split("=", 1)[1] for line in DEV_ENV.read_text().splitlines()
                  if "=" in line and not line.startswith("#")]
    text = COMPOSE.read_text()
    assert [v for v in dev_values if len(v) > 8 and not v.startswith("/") and v in text] == []


def _production_services() -> dict:
    done = _compose("config", env_file=None, env=PRODUCTION_ENV)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@needs_compose
def test_every_long_running_service_has_a_health_check_and_airflow_shares_one_secret_key():
    resolved = _production_services()
    services = resolved["services"]
    one_shot = {"airflow-init", "minio-init"}
    assert [name for name in services if name not in one_shot and "healthcheck" not in services[name]] == []
    for name in ("airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert services[name]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "DagProcessorJob" in services["airflow-dag-processor"]["healthcheck"]["test"][1]
    assert "TriggererJob" in services["airflow-triggerer"]["healthcheck"]["test"][1]
    assert "inspect ping" in services["airflow-worker"]["healthcheck"]["test"][1]
    for key in ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert {services[name]["environment"][key] for name in (*AIRFLOW_SERVICES, "airflow-init")} == {
            PRODUCTION_ENV[{"AIRFLOW__API__SECRET_KEY": "AIRFLOW_SECRET_KEY",
                            "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
                            "AIRFLOW__CORE__FERNET_KEY": "AIRFLOW_FERNET_KEY"}[key]]}
    # development-only services are in the dev profile; production runs no simulator and no sink
    assert services["sf1601-simulator"]["profiles"] == ["dev"] and services["mailsink"]["profiles"] == ["dev"]


@needs_compose
def test_sf1601_certificate_is_a_secret_the_connection_names():
    resolved = _production_services()
    services = resolved["services"]
    assert resolved["secrets"]["sf1601_client_cert"]["file"] == "/etc/docpost/oces.crt"
    assert resolved["secrets"]["sf1601_client_key"]["file"] == "/etc/docpost/oces.key"
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        assert {s["source"] for s in services[name]["secrets"]} == {"sf1601_client_cert", "sf1601_client_key",
                                                                   "sf1601_ca"}
    init_env = services["airflow-init"]["environment"]
    rendered = os.path.expandvars  # what airflow-init.sh does to docker/connections.json
    old = dict(os.environ)
    try:
        os.environ.update({k: str(v) for k, v in init_env.items()})
        conns = json.loads(rendered((ROOT / "docker" / "connections.json").read_text()))
    finally:
        os.environ.clear()
        os.environ.update(old)
    sf1601 = conns["docpost_sf1601"]
    assert sf1601["host"] == "https://sf1601.example.dk/"
    assert sf1601["extra"] == {"cert_file": "/run/secrets/sf1601_client_cert",
                               "key_file": "/run/secrets/sf1601_client_key", "ca_file": "/run/secrets/sf1601_ca"}
    assert conns["smtp_default"]["host"] == "smtp.soeby.dk" and conns["smtp_default"]["port"] == 25


@needs_compose
def test_init_step_migrates_both_databases_creates_the_pool_and_the_connections():
    services = _production_services()["services"]
    init = services["airflow-init"]
    assert init["command"] == ["bash", "/opt/docpost/docker/airflow-init.sh"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["DOCPOST_CONNECTIONS_FILE"] == "/opt/docpost/docker/connections.json"
    steps = [line.strip() for line in INIT_SCRIPT.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    commands = [line for line in steps if line.startswith(("airflow ", "docpost "))]
    assert commands[:3] == ["airflow db migrate", "docpost db upgrade",
                            'airflow pools set docpost_sf1601 "${DOCPOST_SF1601_POOL_SLOTS:-4}" "SF1601 deliveries (docpost)"']
    assert 'airflow connections import --overwrite "$rendered"' in commands
    assert "set -euo pipefail" in steps  # a failed step fails the init, and so nothing starts
    # the image carries the script where the service runs it
    assert "COPY --chown=airflow:root docker/airflow-init.sh docker/connections.json /opt/docpost/docker/" in (
        ROOT / "docker" / "Dockerfile").read_text()
    # every Airflow service and the PostModtag endpoint wait for it to have succeeded
    for name in (*AIRFLOW_SERVICES, "postmodtag"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
