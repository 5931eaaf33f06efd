"""docker-compose.yaml is valid for docker-compose and wires the stack the way docs/operations.md says."""

from __future__ import annotations

import json
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


def _compose(*args: str, file: Path = COMPOSE) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER_COMPOSE, "-f", str(file), *args], cwd=file.parent,
                          capture_output=True, text=True, timeout=60)


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
    assert {"postgres", "redis", "minio", "minio-init", "sf1601-simulator", "airflow-init",
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
