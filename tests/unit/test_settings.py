"""docpost.settings: one place reads the environment; typed, named, secret-safe settings; the
Airflow connections that supply credentials under Airflow."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from docpost import config
from docpost import settings as settings_module
from docpost.errors import ConfigurationError
from docpost.settings import Settings, settings, under_airflow

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "docpost"

#: The one module that reads the process environment.
READER = "plugins/docpost/settings.py"


def _env_reads(path: Path) -> list[int]:
    """Lines of ``path`` that touch os.environ / os.environb / os.getenv (any spelling)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = {"environ", "environb", "getenv", "getenvb"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in names for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in ("environ", "getenv"):
            lines.append(node.lineno)
    return sorted(lines)


def _settings_free_of_env(monkeypatch):
    for key in list(os.environ):
        if key.upper().startswith(("DOCPOST_", "AIRFLOW_CONN_", "AIRFLOW_CTX_", "AWS_")) \
                or key.upper() == "_AIRFLOW_PROCESS_CONTEXT":
            monkeypatch.delenv(key)


@pytest.fixture()
def clean_env(monkeypatch, tmp_path):
    _settings_free_of_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    settings_module._sf1601_cache.clear()
    yield monkeypatch
    settings_module._sf1601_cache.clear()


# ------------------------------------------------------------------------ (a) one reader


def test_only_the_settings_module_reads_the_environment():
    files = sorted(PLUGIN.rglob("*.py")) + sorted((ROOT / "dags").rglob("*.py"))
    assert len(files) > 20
    readers = {str(f.relative_to(ROOT)): _env_reads(f) for f in files}
    readers = {f: lines for f, lines in readers.items() if lines}
    allowed = {READER}  # no exception: nothing in the product builds a child's environment
    assert {f: lines for f, lines in readers.items() if f not in allowed} == {}
    assert READER in readers  # the check does see a reader


def test_importing_settings_does_not_import_airflow():
    code = "import sys; import docpost.settings, docpost.config; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------ (b) bad values


@pytest.mark.parametrize(("var", "value", "problem"), [
    ("DOCPOST_CHUNK_SIZE", "abc", "DOCPOST_CHUNK_SIZE='abc': must be an integer"),
    ("DOCPOST_SF1601_TIMEOUT", "soon", "DOCPOST_SF1601_TIMEOUT='soon': must be a number"),
    ("DOCPOST_SF1601_CONCURRENCY", "0", "DOCPOST_SF1601_CONCURRENCY='0': must be at least 1"),
    ("DOCPOST_WINDOW_CONTENT", "maybe", "DOCPOST_WINDOW_CONTENT='maybe': must be one of cover or reject"),
    ("DOCPOST_SMTP_STARTTLS", "perhaps", "DOCPOST_SMTP_STARTTLS='perhaps': must be true or false"),
    ("DOCPOST_SMTP_PORT", "70000", "DOCPOST_SMTP_PORT='70000': must be at most 65535"),
    ("DOCPOST_TASK_RETRIES", "-1", "DOCPOST_TASK_RETRIES='-1': must be at least 0"),
    ("DOCPOST_MAIL_MAX_BYTES", "lots", "DOCPOST_MAIL_MAX_BYTES='lots': must be an integer"),
])
def test_a_bad_value_is_named_in_a_configuration_error(clean_env, var, value, problem):
    clean_env.setenv(var, value)
    with pytest.raises(ConfigurationError) as caught:
        config.settings()
    assert caught.value.code == "config.invalid"
    assert problem in caught.value.message


def test_a_secret_value_never_appears_in_errors_or_reprs(clean_env):
    key = "tiny-s3cret"  # too short for a pseudonym key
    clean_env.setenv("DOCPOST_PSEUDONYM_KEY", key)
    clean_env.setenv("DOCPOST_SMTP_PASSWORD", "smtp-pa55word")
    clean_env.setenv("DOCPOST_CHUNK_SIZE", "many")
    with pytest.raises(ConfigurationError) as caught:
        settings()
    text = f"{caught.value} {caught.value!r} {caught.value.message}"
    assert "DOCPOST_PSEUDONYM_KEY" in text and "DOCPOST_CHUNK_SIZE='many'" in text
    assert key not in text and "smtp-pa55word" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no pydantic text chained

    good_key = "a-pseudonym-key-long-enough-0123"
    clean_env.setenv("DOCPOST_PSEUDONYM_KEY", good_key)
    clean_env.delenv("DOCPOST_CHUNK_SIZE")
    s = settings()
    assert s.pseudonym_key == good_key.encode()  # bytes for the callers
    shown = f"{s!r} {s} {s.model_dump()} {s.model_dump_json()}"
    assert good_key not in shown and "smtp-pa55word" not in shown

    from docpost.replies.mail import smtp_settings

    assert smtp_settings().password.get_secret_value() == "smtp-pa55word"
    assert "smtp-pa55word" not in repr(smtp_settings())


# ------------------------------------------------------------------------ (c) defaults


def test_defaults_with_nothing_set(clean_env, tmp_path):
    s = config.settings()
    assert isinstance(s, Settings)
    assert s.home == tmp_path / ".docpost"
    assert s.db_url == f"sqlite:///{tmp_path / '.docpost' / 'ledger.db'}" and not s.db_url_configured
    assert s.schema_dir == config.PROJECT_ROOT / "schemas" and s.config_dir == config.PROJECT_ROOT / "config"
    assert (s.bucket, s.s3_endpoint_url, s.aws_conn_id) == ("docpost", None, "docpost_s3")
    with pytest.raises(ConfigurationError) as refused:  # no built-in key: nothing is looked up without one
        s.pseudonym_key
    assert refused.value.code == "config.missing" and "DOCPOST_PSEUDONYM_KEY" in str(refused.value)
    assert s.sender_cvr == "29189846"
    assert (s.sf1601_url, s.sf1601_cert, s.sf1601_key, s.sf1601_ca) == (None, None, None, None)
    assert (s.sf1601_timeout, s.sf1601_concurrency, s.sf1601_attempts) == (30.0, 8, 4)
    assert (s.max_send_attempts, s.chunk_size, s.claim_lease_seconds, s.max_faults) == (12, 500, 600.0, 3)
    assert s.window_content == config.WINDOW_POLICIES[0] == "cover"
    assert (s.task_retries, s.smtp_host, s.smtp_port, s.mail_from) == (3, None, 25, "docpost@soeby.dk")
    assert s.mail_max_bytes == 25 * 1024 * 1024
    assert (s.aws_region, s.aws_env_credentials) == ("eu-west-1", False)
    assert not under_airflow() and not under_airflow("docpost_sf1601")


def test_settings_are_read_anew_each_call_and_empty_means_unset(clean_env, tmp_path):
    clean_env.setenv("DOCPOST_HOME", "~/elsewhere")
    clean_env.setenv("DOCPOST_WINDOW_CONTENT", " Reject ")
    clean_env.setenv("DOCPOST_BUCKET", "")
    clean_env.setenv("AWS_REGION", "eu-north-1")
    s = settings()
    assert s.home == Path("~/elsewhere").expanduser() and s.window_content == "reject"
    assert s.bucket == "docpost" and s.aws_region == "eu-north-1"
    clean_env.setenv("DOCPOST_DB_URL", "postgresql://u@h/db")
    assert settings().db_url == "postgresql://u@h/db" and settings().db_url_configured


def test_show_traceback_never_raises(clean_env):
    assert not settings_module.show_traceback()
    clean_env.setenv("DOCPOST_CHUNK_SIZE", "broken")  # another setting is broken: still answers
    clean_env.setenv("DOCPOST_TRACEBACK", "1")
    assert settings_module.show_traceback()


# ------------------------------------------------------------------------ under Airflow?


def test_under_airflow_rule(clean_env):
    import airflow.sdk  # noqa: F401 - having imported the SDK is not running under Airflow

    assert not under_airflow("docpost_s3")
    clean_env.setenv("AIRFLOW_CONN_DOCPOST_S3", "aws://")
    assert under_airflow("docpost_s3") and not under_airflow("docpost_ledger") and not under_airflow()
    clean_env.setenv("AIRFLOW_CTX_DAG_ID", "docpost_nightly")
    assert under_airflow() and under_airflow("docpost_ledger")
    clean_env.delenv("AIRFLOW_CTX_DAG_ID")
    clean_env.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    assert under_airflow()


# ------------------------------------------------------------------------ (d) Airflow connections
#
# The Task SDK's lookup (``BaseHook.get_connection`` / ``Connection.get``) outside a task falls
# back to the environment-variables backend, so ``AIRFLOW_CONN_*`` JSON works without a metadata
# database or an API server: these tests go through Airflow's real lookup.

CERT = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvkeymaterial\n-----END PRIVATE KEY-----"


@pytest.fixture()
def airflow_env(clean_env, tmp_path):
    clean_env.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    return clean_env


def test_sf1601_comes_from_its_airflow_connection_under_airflow(airflow_env, tmp_path):
    airflow_env.setenv("AIRFLOW_CTX_DAG_ID", "docpost_nightly")
    airflow_env.setenv("AIRFLOW_CONN_DOCPOST_SF1601", json.dumps({
        "conn_type": "http", "host": "sf1601.example", "schema": "https", "port": 8443,
        "extra": {"cert_pem": CERT, "key_pem": KEY, "ca_file": str(tmp_path / "ca.pem")}}))
    s = settings()
    assert s.sf1601_url == "https://sf1601.example:8443"
    assert s.sf1601_ca == str(tmp_path / "ca.pem")
    for path, pem in ((s.sf1601_cert, CERT), (s.sf1601_key, KEY)):
        assert Path(path).read_text() == pem + "\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(Path(path).parent).st_mode) == 0o700
    assert settings().sf1601_key == s.sf1601_key  # stable path: the client cache keeps working
    assert "MIIEvkeymaterial" not in repr(s)

    # a DOCPOST_SF1601_* variable that is set wins over the connection
    airflow_env.setenv("DOCPOST_SF1601_CA", "/etc/ssl/docpost-ca.pem")
    assert settings().sf1601_ca == "/etc/ssl/docpost-ca.pem"
    airflow_env.setenv("DOCPOST_SF1601_URL", "http://127.0.0.1:9")
    s = settings()
    assert (s.sf1601_url, s.sf1601_cert) == ("http://127.0.0.1:9", None)


def test_sf1601_connection_mapping():
    from airflow.sdk import Connection

    conn = Connection(conn_id="docpost_sf1601", conn_type="http", host="https://sf1601.example/base/",
                      extra=json.dumps({"cert_file": "/c.pem", "key_file": "/k.pem"}))
    assert settings_module.sf1601_from_connection(conn) == {
        "sf1601_url": "https://sf1601.example/base/", "sf1601_cert": "/c.pem", "sf1601_key": "/k.pem",
        "sf1601_ca": None}
    both = Connection(conn_id="docpost_sf1601", conn_type="http", host="h",
                      extra=json.dumps({"key_file": "/k.pem", "key_pem": KEY}))
    with pytest.raises(ConfigurationError, match="key_file or key_pem"):
        settings_module.sf1601_from_connection(both)
    with pytest.raises(ConfigurationError, match="no host"):
        settings_module.sf1601_from_connection(Connection(conn_id="docpost_sf1601", conn_type="http"))


def test_smtp_comes_from_smtp_default_through_the_smtp_hook_under_airflow(airflow_env):
    from docpost.replies.mail import smtp_settings

    airflow_env.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "mail.example", "port": 587, "login": "docpost",
        "password": "smtp-pa55word",
        "extra": {"disable_ssl": True, "from_email": "svar@soeby.dk", "timeout": 12}}))
    s = smtp_settings()  # AIRFLOW_CONN_SMTP_DEFAULT is set: under Airflow for this connection
    assert (s.host, s.port, s.user, s.starttls, s.use_ssl, s.sender, s.timeout) == (
        "mail.example", 587, "docpost", True, False, "svar@soeby.dk", 12.0)
    assert s.password.get_secret_value() == "smtp-pa55word"
    assert "smtp-pa55word" not in repr(s)

    airflow_env.setenv("DOCPOST_SMTP_HOST", "relay.local")  # the variables win when set
    assert (smtp_settings().host, smtp_settings().port, smtp_settings().sender) == (
        "relay.local", 25, "docpost@soeby.dk")


def test_without_the_connection_under_airflow_the_defaults_stay(airflow_env):
    from docpost.replies.mail import smtp_settings

    airflow_env.setenv("AIRFLOW_CTX_DAG_ID", "docpost_replies")
    s = settings()
    assert s.sf1601_url is None
    assert (smtp_settings().host, smtp_settings().port) == ("localhost", 25)
