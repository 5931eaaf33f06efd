"""docpost's settings: the one place that reads the process environment.

:class:`Settings` (pydantic-settings) declares every ``DOCPOST_*`` variable as a typed field (the
field name is the variable without its ``DOCPOST_`` prefix); :func:`settings` reads the environment
anew on every call (cheap, and tests monkeypatch it). A value that does not parse raises
:class:`~docpost.errors.ConfigurationError` (``config.invalid``) naming the variable; a secret's
value (the pseudonym key, the SMTP password) is never echoed, in messages or in reprs.

Every setting has an embedded default, so ``make demo`` runs with nothing configured.

Under Airflow (:func:`under_airflow`) credentials come from Airflow connections, looked up through
Airflow itself (``AIRFLOW_CONN_*`` variables, the metadata database, a secrets backend):

- ``docpost_s3`` (``DOCPOST_AWS_CONN_ID``): S3, through the Amazon provider's ``S3Hook``
  (:mod:`docpost.storage`);
- ``docpost_ledger``: the ledger database (:mod:`docpost.ledger.airflow_connection`);
- ``docpost_sf1601``: SF1601's base URL and the client certificate (:func:`sf1601_from_connection`),
  filled into ``sf1601_url`` / ``sf1601_cert`` / ``sf1601_key`` / ``sf1601_ca`` where the
  ``DOCPOST_SF1601_*`` variables are unset;
- ``smtp_default``: the mail server, through the SMTP provider's ``SmtpHook``
  (:func:`smtp_from_airflow`, used by :mod:`docpost.replies.mail`).

A ``DOCPOST_*`` variable that is set always wins over the connection. Airflow is imported only
inside the functions that look a connection up: importing this module never imports Airflow.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretBytes, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docpost.errors import ConfigurationError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "DOCPOST_"

#: What to do with a printable supplied PDF whose address window is not free (the first: default).
WINDOW_POLICIES = ("cover", "reject")

#: Airflow connection ids docpost uses under Airflow (S3's is the setting ``aws_conn_id``).
LEDGER_CONN_ID = "docpost_ledger"
SF1601_CONN_ID = "docpost_sf1601"
SMTP_CONN_ID = "smtp_default"

DEFAULT_MAIL_FROM = "docpost@soeby.dk"
DEFAULT_MAIL_MAX_BYTES = 25 * 1024 * 1024  # what common mail servers take


class Settings(BaseSettings):
    """docpost's settings, read from ``DOCPOST_*`` environment variables (``DOCPOST_<FIELD>``).

    Immutable. ``pseudonym_key`` is the key as bytes (what the ledger's HMAC needs); the field
    itself, ``pseudonym_secret``, is a :class:`~pydantic.SecretBytes` and never shown.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,  # VAR= counts as unset: the default applies
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=False,
    )

    # -- where things are
    home: Path = Field(default_factory=lambda: Path.cwd() / ".docpost",
                       description="working directory for embedded state (ledger file, demo stack)")
    db_url: str = Field("", description="SQLAlchemy URL of the ledger (default: SQLite in home)")
    schema_dir: Path = Field(PROJECT_ROOT / "schemas", description="the XSDs")
    config_dir: Path = Field(PROJECT_ROOT / "config",
                             description="contact hierarchy, sending profiles, recipients")

    # -- S3
    bucket: str = Field("docpost", description="the S3 bucket holding inbox/, rejected/, reports/")
    s3_endpoint_url: str | None = Field(None, description="moto/MinIO endpoint, None for AWS")
    aws_conn_id: str = Field("docpost_s3", description="the Airflow connection used under Airflow")
    # AWS's own variables, read here so that nothing else reads the environment.
    aws_region: str = Field("eu-west-1", validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION"))
    aws_access_key_id: SecretStr | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_profile: str | None = Field(None, validation_alias="AWS_PROFILE")

    # -- the letters
    pseudonym_secret: SecretBytes | None = Field(None, validation_alias="DOCPOST_PSEUDONYM_KEY", min_length=16,
                                                 description="HMAC key for recipient lookup hashes")
    sender_cvr: str = Field("29189846", description="the municipality's CVR (MeMo Sender)")
    window_content: Literal["cover", "reject"] = Field(
        "cover", description="supplied PDF with content in the window: cover | reject")

    # -- SF1601
    sf1601_url: str | None = Field(None, description="base URL of SF1601 (or the simulator)")
    sf1601_cert: str | None = Field(None, description="client certificate (PEM file) for mutual TLS")
    sf1601_key: str | None = Field(None, description="its private key (PEM file)")
    sf1601_ca: str | None = Field(None, description="CA bundle to verify the service (default: system)")
    sf1601_timeout: float = Field(30.0, gt=0, description="seconds per request")
    sf1601_concurrency: int = Field(8, ge=1, description="parallel sends per chunk task")
    sf1601_attempts: int = Field(4, ge=1, description="sends per letter within one task before RETRYING")

    # -- the pipeline
    max_send_attempts: int = Field(12, ge=1, description="tasks that may retry a letter before FAILED")
    chunk_size: int = Field(500, ge=1, description="letters per mapped chunk task")
    claim_lease_seconds: float = Field(600.0, ge=0, description="a killed task's claims expire after this")
    max_faults: int = Field(3, ge=1, description="unexpected failures on one letter before quarantine")
    task_retries: int = Field(3, ge=0, description="Airflow retries per task")
    collect_lookback_days: int = Field(7, ge=0, description="days before the night whose inbox folders collect sweeps")
    stale_after_hours: float = Field(48.0, gt=0, description="a letter workable for longer than this is reported stale")

    # -- receipts from the Beskedfordeler (SF1461) over AMQP 0-9-1
    amqp_url: SecretStr | None = Field(None, description="broker URL: amqp://user:pw@host:5672/vhost locally, "
                                       "amqps://host:5671/BF in production")
    amqp_queue: str = Field("docpost.receipts", description="the subscription's queue")
    amqp_quarantine_queue: str | None = Field(None, description="where unreadable envelopes go (default: <queue>.quarantine)")
    amqp_ca: str | None = Field(None, description="CA bundle for the broker's TLS certificate")
    amqp_cert: str | None = Field(None, description="client certificate (PEM file) for TLS")
    amqp_key: str | None = Field(None, description="its private key (PEM file)")
    amqp_token_file: str | None = Field(None, description="SAML token for the Beskedfordeler's own SASL mechanism")
    amqp_batch: int = Field(500, ge=1, description="messages per drain of the receipts queue")

    # -- the PostModtag endpoint (SF1606: citizens' messages to the municipality)
    postmodtag_host: str = Field("127.0.0.1", description="address the endpoint listens on")
    postmodtag_port: int = Field(8606, ge=0, le=65535, description="its port (0: any free port)")
    postmodtag_cert: str | None = Field(None, description="the endpoint's server certificate (PEM file)")
    postmodtag_key: str | None = Field(None, description="its private key (PEM file)")
    postmodtag_client_ca: str | None = Field(None, description="CA of the Postkomponent's client certificates (mutual TLS)")

    # -- send now: the submit API (one letter from a caseworker's system, sent within minutes)
    sendnow_host: str = Field("127.0.0.1", description="address the submit API listens on")
    sendnow_port: int = Field(8607, ge=0, le=65535, description="its port (0: any free port)")
    sendnow_cert: str | None = Field(None, description="the submit API's server certificate (PEM file)")
    sendnow_key: str | None = Field(None, description="its private key (PEM file)")
    sendnow_client_ca: str | None = Field(None, description="CA of the source systems' client certificates (mutual TLS)")
    sendnow_tokens: SecretStr | None = Field(None, description="source-system=token pairs, comma-separated: "
                                             "who may submit, and as which source system")
    sendnow_chunk_size: int = Field(100, ge=1, description="letters per mapped chunk task of docpost_now")
    sendnow_settle_seconds: float = Field(5.0, ge=0, description="a docpost_now run waits until no letter was "
                                          "registered for this long before it plans its chunks (a burst ends first)")
    sendnow_settle_max_seconds: float = Field(60.0, ge=0, description="... but waits no longer than this")
    airflow_api_url: str | None = Field(None, description="Airflow's API server, where the submit API raises "
                                        "the docpost_now asset event (unset: no event; the nightly takes the letter)")
    airflow_api_user: str | None = Field(None, description="Airflow user allowed to create asset events")
    airflow_api_password: SecretStr | None = Field(None, description="its password")
    submit_token: SecretStr | None = Field(None, description="`docpost submit`'s token for the submit API")

    # -- mail (replies)
    smtp_host: str | None = Field(None, description="mail server; unset: smtp_default under Airflow, else localhost")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = Field(30.0, gt=0)
    mail_from: str = DEFAULT_MAIL_FROM
    mail_max_bytes: int = Field(DEFAULT_MAIL_MAX_BYTES, ge=1, description="largest mail the server takes")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):  # noqa: ANN001, ANN206 - pydantic-settings' hook
        return init_settings, env_settings  # no .env file, no secrets directory: the environment only

    @field_validator("home", "schema_dir", "config_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("window_content", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    _db_url_configured: bool = PrivateAttr(False)

    def model_post_init(self, context: Any, /) -> None:
        # the ledger's default lives in home; whether DOCPOST_DB_URL was given is kept apart
        self._db_url_configured = bool(self.db_url)
        if not self.db_url:
            self.__dict__["db_url"] = f"sqlite:///{self.home / 'ledger.db'}"

    @property
    def db_url_configured(self) -> bool:
        """Whether ``DOCPOST_DB_URL`` was set (else ``db_url`` is the SQLite default in home)."""
        return self._db_url_configured

    @property
    def pseudonym_key(self) -> bytes:
        """The pseudonym key as bytes (``DOCPOST_PSEUDONYM_KEY``); there is no built-in one.

        Without it nothing that stores or looks up a recipient starts (the ledger, the reply
        store): a public default would let anyone recompute the lookup hashes. The test bench
        gives the demo, the benchmarks and the tests a key of its own and says so.
        """
        if self.pseudonym_secret is None:
            raise ConfigurationError(
                "DOCPOST_PSEUDONYM_KEY is not set: docpost needs a secret key (at least 16 characters) "
                "for its recipient lookup hashes", code="config.missing")
        return self.pseudonym_secret.get_secret_value()

    @property
    def aws_env_credentials(self) -> bool:
        """Whether the environment names AWS credentials (``AWS_ACCESS_KEY_ID`` or ``AWS_PROFILE``)."""
        return self.aws_access_key_id is not None or self.aws_profile is not None


def env_name(field: str) -> str:
    """The environment variable of a settings field (``chunk_size`` -> ``DOCPOST_CHUNK_SIZE``)."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return " / ".join(str(c) for c in alias.choices)
    return f"{ENV_PREFIX}{field.upper()}"


def _is_secret(field: str) -> bool:
    annotation = str(Settings.model_fields[field].annotation)
    return "Secret" in annotation


_PROBLEMS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false (1/0, yes/no)",
    "literal_error": "must be one of {expected}",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "bytes_too_short": "must be at least {min_length} bytes long",
    "too_short": "must be at least {min_length} characters long",
    "string_too_short": "must be at least {min_length} characters long",
}


def _raw_value(field: str) -> str | None:
    names = [n.strip().upper() for n in env_name(field).split("/")]
    for key, value in os.environ.items():
        if key.upper() in names:
            return value
    return None


def _field_of(loc: str) -> str | None:
    """The field an error location names (its name, or its alias for aliased fields)."""
    if loc in Settings.model_fields:
        return loc
    for field in Settings.model_fields:
        if loc.upper() in (n.strip().upper() for n in env_name(field).split("/")):
            return field
    return None


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """The first problem of ``exc`` in plain words, naming the variable (a secret's value never)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = _field_of(str(error["loc"][0]) if error["loc"] else "")
        if field is None:
            problems.append(f"settings: {error['type']}")
            continue
        name = env_name(field)
        template = _PROBLEMS.get(error["type"])
        ctx = {k: (str(v).replace("'", "") if k == "expected" else v) for k, v in (error.get("ctx") or {}).items()}
        try:
            problem = template.format(**ctx) if template else error["msg"].lower()
        except (KeyError, IndexError):
            problem = error["type"]
        if _is_secret(field):
            problems.append(f"{name}: {problem} (value not shown)")
        else:
            problems.append(f"{name}={_raw_value(field)!r}: {problem}")
    return ConfigurationError("; ".join(problems), code="config.invalid")


# ------------------------------------------------------------------------------ under Airflow?


def under_airflow(conn_id: str | None = None) -> bool:
    """Whether docpost runs inside an Airflow task or component, and so takes credentials from
    Airflow connections.

    True when any of these holds (checked without importing Airflow):

    1. ``AIRFLOW_CTX_DAG_ID`` is set: Airflow's task runner exports the task's context to the
       environment before ``execute`` (workers, ``airflow dags test``, ``airflow tasks test``);
    2. the Task SDK's supervisor channel is live in this process (``task_runner.SUPERVISOR_COMMS``,
       looked at only if Airflow already imported that module): a task, before its context is
       exported;
    3. ``_AIRFLOW_PROCESS_CONTEXT`` is set: an Airflow server component (scheduler, API server,
       triggerer) that Airflow marked for its own secrets lookup;
    4. ``conn_id`` is given and ``AIRFLOW_CONN_<CONN_ID>`` is set: the operator defined that very
       connection in Airflow's form, which is honoured from the command line too.

    Merely having imported ``airflow.sdk`` (a test, DAG parsing) is not running under Airflow.
    """
    env = os.environ
    if env.get("AIRFLOW_CTX_DAG_ID") or env.get("_AIRFLOW_PROCESS_CONTEXT"):
        return True
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if runner is not None and getattr(runner, "SUPERVISOR_COMMS", None) is not None:
        return True
    return bool(conn_id) and f"AIRFLOW_CONN_{conn_id.upper()}" in env


def airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` through Airflow's own lookup, or None if it has none.

    Airflow's lookup: ``AIRFLOW_CONN_*`` variables, a configured secrets backend, and in a task
    (through the supervisor) or a server component the metadata database.
    """
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # pragma: no cover - Airflow not installed
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except ImportError as exc:  # pragma: no cover - an SDK without a supervisor to ask
        log.warning("Airflow connection %s cannot be looked up here: %s", conn_id, type(exc).__name__)
        return None
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own "not found" types
        if type(exc).__name__ != "AirflowNotFoundException":
            log.warning("Airflow connection %s lookup failed: %s", conn_id, type(exc).__name__)
        return None


# ------------------------------------------------------------------------------ SF1601


def _private_dir() -> Path:
    """A directory only this user can read, for key material handed over as PEM text."""
    path = Path(tempfile.gettempdir()) / f"docpost-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ConfigurationError(f"{path} is not a private directory of this user", code="config.insecure-tmp")
    return path


def private_pem_file(pem: str, kind: str) -> str:
    """``pem`` in a file only this user can read (0600), named by its content (so stable)."""
    data = pem.strip().encode() + b"\n"
    target = _private_dir() / f"sf1601-{kind}-{hashlib.sha256(data).hexdigest()[:32]}.pem"
    if target.exists() and target.read_bytes() == data:
        return str(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".pem-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)


def sf1601_from_connection(conn: Any) -> dict[str, str | None]:
    """``sf1601_url`` / ``sf1601_cert`` / ``sf1601_key`` / ``sf1601_ca`` from an SF1601 connection.

    The base URL is the connection's host when that is a URL (``https://sf1601.example/``), else
    ``<schema or https>://<host>[:<port>]``. The extras give the client certificate, its key and
    the CA bundle either as files (``cert_file``, ``key_file``, ``ca_file``) or inline as PEM
    (``cert_pem``, ``key_pem``, ``ca_pem``), written to private 0600 files.
    """
    host = (conn.host or "").strip()
    if not host:
        raise ConfigurationError(f"Airflow connection {conn.conn_id!r} has no host (the SF1601 base URL)",
                                 code="config.invalid")
    if "://" in host:
        url = host
    else:
        url = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
    extra = conn.extra_dejson or {}
    out: dict[str, str | None] = {"sf1601_url": url}
    for kind in ("cert", "key", "ca"):
        path, pem = extra.get(f"{kind}_file"), extra.get(f"{kind}_pem")
        if path and pem:
            raise ConfigurationError(f"Airflow connection {conn.conn_id!r}: give {kind}_file or {kind}_pem, "
                                     "not both", code="config.invalid")
        out[f"sf1601_{kind}"] = str(Path(path).expanduser()) if path else (private_pem_file(pem, kind) if pem else None)
    return out


_SF1601_TTL = 60.0
_sf1601_cache: dict[tuple, tuple[float, dict[str, str | None] | None]] = {}
_sf1601_lock = threading.Lock()


def sf1601_from_airflow(conn_id: str = SF1601_CONN_ID) -> dict[str, str | None] | None:
    """The SF1601 settings of the Airflow connection, or None without one (kept a minute)."""
    key = (conn_id, os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"))
    now = time.monotonic()
    with _sf1601_lock:
        hit = _sf1601_cache.get(key)
        if hit and now - hit[0] < _SF1601_TTL:
            return hit[1]
    conn = airflow_connection(conn_id)
    found = sf1601_from_connection(conn) if conn is not None else None
    with _sf1601_lock:
        _sf1601_cache[key] = (now, found)
    return found


# ------------------------------------------------------------------------------ SMTP


def smtp_from_hook(hook: Any) -> dict[str, Any]:
    """Mail server settings as the SMTP provider's hook reads its connection (extras
    ``disable_tls``, ``disable_ssl``, ``timeout``, ``from_email``)."""
    use_ssl = bool(hook.use_ssl)
    return {
        "host": hook.host or "localhost",
        "port": int(hook.port or (465 if use_ssl else 25)),
        "user": hook.smtp_user or None,
        "password": SecretStr(hook.smtp_password) if hook.smtp_password else None,
        "starttls": bool(hook.smtp_starttls),
        "use_ssl": use_ssl,
        "sender": hook.from_email or None,
        "timeout": float(hook.timeout),
    }


def smtp_from_airflow(conn_id: str = SMTP_CONN_ID) -> dict[str, Any] | None:
    """The mail server of the Airflow SMTP connection via ``SmtpHook``, or None without one."""
    conn = airflow_connection(conn_id)
    if conn is None:
        return None
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    hook = SmtpHook(smtp_conn_id=conn_id)
    hook.smtp_connection = conn  # what SmtpHook.get_conn loads, without logging in
    return smtp_from_hook(hook)


# ------------------------------------------------------------------------------ the settings


#: Variables outside the DOCPOST_ prefix that Settings reads.
_OTHER_VARS = frozenset({"AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_PROFILE"})


@functools.lru_cache(maxsize=16)
def _parse(snapshot: tuple[tuple[str, str], ...], cwd: str) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise _configuration_error(exc) from None


def read_env() -> Settings:
    """The settings of the ``DOCPOST_*`` variables alone (no Airflow connection consulted).

    The environment is read on every call; parsing it (a few milliseconds) is skipped when the
    variables docpost reads and the working directory (``home``'s default) are as last time.
    """
    snapshot = tuple(sorted((k, v) for k, v in os.environ.items()
                            if k.upper().startswith(ENV_PREFIX) or k.upper() in _OTHER_VARS))
    return _parse(snapshot, os.getcwd())


def show_traceback() -> bool:
    """``DOCPOST_TRACEBACK``: the CLI prints the full traceback of an internal error (any value but
    empty or ``0``). Never raises, as it is asked while reporting another error (a broken
    setting among them), so it reads this one variable alone."""
    value = next((v for k, v in os.environ.items() if k.upper() == "DOCPOST_TRACEBACK"), "")
    return value.strip() not in ("", "0")


def settings() -> Settings:
    """The settings from the current environment (read anew each call: cheap, and testable).

    Under Airflow, SF1601's URL and certificates come from the ``docpost_sf1601`` connection
    when ``DOCPOST_SF1601_URL`` is unset (each ``DOCPOST_SF1601_*`` that is set still wins).
    """
    s = read_env()
    if s.sf1601_url is None and under_airflow(SF1601_CONN_ID):
        found = sf1601_from_airflow()
        if found:
            s = s.model_copy(update={k: v for k, v in found.items() if getattr(s, k) is None})
    return s
