"""The S3 seam: the inbox of submissions, and where docpost writes its reports.

One :class:`ObjectStore` per process (or task) holds an S3 client. Under Airflow the client comes
from the Amazon provider's ``S3Hook`` and the Airflow connection ``settings().aws_conn_id`` (so an
operator configures S3 in one place); everywhere else it is a plain boto3 client on
``settings().s3_endpoint_url``. Airflow is imported only inside :meth:`ObjectStore._hook_client`.

Layout of the bucket (see DESIGN.md)::

    inbox/<source-system>/<YYYY-MM-DD>/<submission-id>/<files...>, _READY written last
    rejected/<source-system>/<YYYY-MM-DD>/<submission-id>/...
    reports/<YYYY-MM-DD>/...

A submission is picked up only once its ``_READY`` object exists. Finding them costs one
paginated listing per source system and date, never a request per object.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

from docpost import config
from docpost.errors import DocpostError, Unavailable
from docpost.model import READY_MARKER, SubmissionKey

INBOX = "inbox/"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class StorageError(DocpostError):
    """Root of every S3 problem docpost reports. ``code`` is stable, ``message`` is plain language."""

    code = "storage.error"

    def __init__(self, message: str, *, key: str | None = None, s3_code: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.s3_code = s3_code  # S3's own error code, e.g. "NoSuchKey", "AccessDenied"


class ObjectNotFound(StorageError):
    code = "storage.not-found"


class ObjectTooLarge(StorageError):
    code = "storage.too-large"


class InboxGuardError(StorageError):
    """A delete that could remove originals whose messages are not final yet."""

    code = "storage.inbox-guard"


class SinkOrderError(StorageError):
    """A file written into a submission folder after its ``_READY`` marker."""

    code = "storage.sink-after-ready"


class StorageUnavailable(StorageError, Unavailable):
    """S3 could not be reached or refused the request."""

    code = "storage.unavailable"


class BucketNotFound(StorageUnavailable):
    code = "storage.no-bucket"


class StorageRefused(StorageError):
    """S3 refused the request as such (access denied, invalid name, ...): retrying won't help."""

    code = "storage.refused"


class ObjectChanged(StorageRefused):
    """The object is no longer the version asked for (``If-Match`` on its ETag failed)."""

    code = "storage.changed"


@dataclass
class InboxScan:
    """What one scan of the inbox found: READY submissions (with their file sizes) and folders
    still being written (no ``_READY`` yet), which are left alone and reported as pending."""

    ready: list[SubmissionKey] = field(default_factory=list)
    pending: list[SubmissionKey] = field(default_factory=list)
    files: dict[SubmissionKey, dict[str, int]] = field(default_factory=dict, repr=False)
    etags: dict[SubmissionKey, dict[str, str]] = field(default_factory=dict, repr=False)
    ready_at: dict[SubmissionKey, dt.datetime] = field(default_factory=dict, repr=False)
    #: READY folders whose path breaks the contract: folder prefix -> [(code, message)]
    refused: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


#: The contract's names (docs/submission-contract.md), enforced before anything is registered.
SOURCE_SYSTEM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
SUBMISSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def folder_problems(system: str, date_folder: str, submission_id: str) -> list[tuple[str, str]]:
    """What breaks the contract in a submission folder's path: ``[(code, message)]`` (names never echoed)."""
    problems = []
    if not SOURCE_SYSTEM_NAME.fullmatch(system):
        problems.append(("folder.bad-source-system",
                         "the source system folder must be 1-64 characters a-z, 0-9 and '-'"))
    try:
        canonical = dt.date.fromisoformat(date_folder).isoformat() == date_folder
    except ValueError:
        canonical = False
    if not canonical:
        problems.append(("folder.bad-date", "the date folder must be a date written YYYY-MM-DD"))
    if not SUBMISSION_ID.fullmatch(submission_id):
        problems.append(("folder.bad-submission-id",
                         "the submission id must be 1-100 characters A-Z, a-z, 0-9, '-' and '_'"))
    return problems


def parse_submission_key(key: str) -> tuple[SubmissionKey, str] | None:
    """``inbox/<sys>/<date>/<id>/<name>`` -> (key, name); None for anything else."""
    parts = key.split("/", 4)
    if len(parts) != 5 or parts[0] != "inbox" or not parts[1] or not parts[3] or not parts[4]:
        return None
    try:
        date = dt.date.fromisoformat(parts[2])
    except ValueError:
        return None
    if parts[2] != date.isoformat():  # only the canonical YYYY-MM-DD folder name
        return None
    return SubmissionKey(parts[1], date, parts[3]), parts[4]


def _read_body(resp: dict, key: str, limit: int | None = None) -> bytes:
    """Read a response body; a stream broken on the way is S3 trouble (retried), like a failed call."""
    from http.client import HTTPException

    from botocore.exceptions import BotoCoreError
    from urllib3.exceptions import HTTPError

    body = resp["Body"]
    try:
        data = body.read() if limit is None else body.read(limit)
    except (BotoCoreError, HTTPError, HTTPException, OSError) as exc:
        raise StorageUnavailable(f"S3 get_object failed for {key!r} while reading: {type(exc).__name__}",
                                 key=key) from exc
    finally:
        body.close()
    # a bounded read does not check the length: a body cut short must not pass for the file
    announced = resp.get("ContentLength")
    if announced is not None and len(data) < min(announced, limit if limit is not None else announced):
        raise StorageUnavailable(f"S3 get_object for {key!r} ended after {len(data)} of {announced} bytes", key=key)
    return data


class ObjectStore:
    """S3 access for docpost, with a count of the S3 requests made (``calls``, ``calls_by_op``).

    ``backend`` is ``"auto"`` (the S3Hook when :func:`docpost.settings.under_airflow` and the
    connection exists, else boto3), ``"hook"`` or ``"boto3"``. The client is thread-safe and shared by the sink's pool.
    """

    def __init__(
        self,
        bucket: str | None = None,
        *,
        endpoint_url: str | None = None,
        aws_conn_id: str | None = None,
        backend: str = "auto",
        max_pool_connections: int = 32,
    ) -> None:
        s = config.settings()
        self.bucket = bucket or s.bucket
        self.endpoint_url = endpoint_url if endpoint_url is not None else s.s3_endpoint_url
        self.aws_conn_id = aws_conn_id or s.aws_conn_id
        if backend not in ("auto", "hook", "boto3"):
            raise ValueError(f"unknown storage backend {backend!r}")
        self._backend = backend
        self._max_pool = max_pool_connections
        self._count_lock = threading.Lock()
        self.calls_by_op: Counter[str] = Counter()
        self.backend_used: str | None = None

    # -- client ------------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """S3 requests made so far (every page of a listing counts; retries do not)."""
        return sum(self.calls_by_op.values())

    def reset_calls(self) -> None:
        with self._count_lock:
            self.calls_by_op.clear()

    def _count(self, model: Any = None, **_: Any) -> None:
        with self._count_lock:
            self.calls_by_op[getattr(model, "name", "?")] += 1

    def _botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            max_pool_connections=self._max_pool,
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )

    def _use_hook(self) -> bool:
        if self._backend != "auto":
            return self._backend == "hook"
        # Under Airflow, or with this connection defined in Airflow's AIRFLOW_CONN_* form.
        return config.under_airflow(self.aws_conn_id)

    def _hook_client(self) -> Any | None:
        """The S3Hook's client, or None when the Airflow connection does not exist."""
        try:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from airflow.sdk import BaseHook
            from airflow.sdk.exceptions import AirflowNotFoundException
        except ImportError:
            if self._backend == "hook":
                raise
            return None
        try:
            BaseHook.get_connection(self.aws_conn_id)
        except AirflowNotFoundException:
            if self._backend == "hook":
                raise StorageRefused(f"Airflow connection {self.aws_conn_id!r} does not exist") from None
            return None
        except ImportError as exc:  # outside a task the Task SDK has no supervisor to ask
            if "SUPERVISOR_COMMS" not in str(exc) or self._backend == "hook":
                raise
            return None
        hook = S3Hook(aws_conn_id=self.aws_conn_id, config=self._botocore_config())
        return hook.get_conn()

    def _boto3_client(self) -> Any:
        import boto3

        s = config.settings()
        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": s.aws_region,
            "config": self._botocore_config(),
        }
        host = urlparse(self.endpoint_url).hostname if self.endpoint_url else None
        if host in _LOOPBACK_HOSTS and not s.aws_env_credentials:
            # The embedded moto server accepts any key; don't wander the credential chain for one.
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
        return boto3.client("s3", **kwargs)

    @cached_property
    def client(self) -> Any:
        """The boto3 S3 client (from the S3Hook under Airflow), with request counting attached."""
        client = self._hook_client() if self._use_hook() else None
        self.backend_used = "hook" if client is not None else "boto3"
        if client is None:
            client = self._boto3_client()
        client.meta.events.register("before-call.s3", self._count)
        return client

    def _call(self, op: str, key: str | None = None, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket" or (op == "head_bucket" and status == 404):
                raise BucketNotFound(f"bucket {self.bucket!r} does not exist", key=key, s3_code=code) from exc
            if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(f"no object {key!r} in bucket {self.bucket!r}", key=key, s3_code=code) from exc
            if status == 412 or code == "PreconditionFailed":
                raise ObjectChanged(f"object {key!r} was replaced since it was listed", key=key, s3_code=code) from exc
            kind = StorageRefused if status and 400 <= status < 500 and status not in (408, 429) else StorageUnavailable
            raise kind(f"S3 {op} failed for {key!r}: {code or status}", key=key, s3_code=code) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 {op} failed for {key!r}: {type(exc).__name__}", key=key) from exc

    # -- bucket ------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (embedded stack, demo, generator)."""
        try:
            self._call("head_bucket")
        except BucketNotFound:
            region = self.client.meta.region_name
            extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            try:
                self._call("create_bucket", **extra)
            except StorageRefused as exc:
                if exc.s3_code != "BucketAlreadyOwnedByYou":
                    raise

    # -- listing -----------------------------------------------------------------------------

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from paginator.paginate(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"S3 listing of {prefix!r} failed: {exc}", key=prefix) from exc

    def list_objects(self, prefix: str) -> dict[str, int]:
        """Every key under ``prefix`` with its size."""
        return {o["Key"]: o["Size"] for page in self._pages(prefix) for o in page.get("Contents", ())}

    def list_folders(self, prefix: str) -> list[str]:
        """The next folder level under ``prefix`` (names without slashes)."""
        out: list[str] = []
        for page in self._pages(prefix, delimiter="/"):
            out.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", ()))
        return out

    def source_systems(self) -> list[str]:
        """The source-system folders present under ``inbox/``."""
        return sorted(self.list_folders(INBOX))

    def scan_inbox(self, date: dt.date, source_systems: Iterable[str] | None = None) -> InboxScan:
        """One paginated listing per source system of ``inbox/<sys>/<date>/``."""
        systems = sorted(source_systems) if source_systems is not None else self.source_systems()
        scan = InboxScan()
        for system in systems:
            self._scan_prefix(f"{INBOX}{system}/{date.isoformat()}/", scan)
        scan.ready.sort(key=str)
        scan.pending.sort(key=str)
        return scan

    def _scan_prefix(self, prefix: str, scan: InboxScan) -> None:
        seen: dict[SubmissionKey, dict[str, int]] = {}
        etags: dict[SubmissionKey, dict[str, str]] = {}
        problems: dict[str, list[tuple[str, str]]] = {}  # each folder's path checked once
        odd: dict[str, set[str]] = {}  # folders whose path breaks the contract: names seen
        for page in self._pages(prefix):
            for obj in page.get("Contents", ()):
                parts = obj["Key"].split("/", 4)
                if len(parts) == 5 and all(parts[1:]):
                    folder = "/".join(parts[:4]) + "/"
                    if folder not in problems:
                        problems[folder] = folder_problems(*parts[1:4])
                    if problems[folder]:
                        odd.setdefault(folder, set()).add(parts[4])
                        continue
                parsed = parse_submission_key(obj["Key"])
                if parsed is None:
                    continue
                key, name = parsed
                seen.setdefault(key, {})[name] = obj["Size"]
                etags.setdefault(key, {})[name] = obj.get("ETag", "")
                if name == READY_MARKER:
                    scan.ready_at[key] = obj["LastModified"]
        for key, files in seen.items():
            if READY_MARKER in files:
                scan.ready.append(key)
                scan.files[key] = files
                scan.etags[key] = etags[key]
            else:
                scan.pending.append(key)
        for folder, names in odd.items():
            if READY_MARKER in names:  # a folder still being written is left alone, like any other
                scan.refused[folder] = problems[folder]

    def list_ready_submissions(
        self, date: dt.date, source_systems: Iterable[str] | None = None
    ) -> list[SubmissionKey]:
        """The submissions under ``inbox/*/<date>/*`` that have their ``_READY`` object."""
        return self.scan_inbox(date, source_systems).ready

    def scan_inbox_before(
        self,
        date: dt.date,
        lookback_days: int = 7,
        source_systems: Iterable[str] | None = None,
        ready_since: dt.datetime | None = None,
    ) -> InboxScan:
        """READY submissions of the ``lookback_days`` dates before ``date`` (late drops).

        Only date folders that exist are listed (one delimited listing per source system finds
        them). With ``ready_since``, only submissions whose ``_READY`` is at least that recent.
        The caller's ledger decides which of them are new; registering is idempotent.
        """
        systems = sorted(source_systems) if source_systems is not None else self.source_systems()
        first = date - dt.timedelta(days=lookback_days)
        scan = InboxScan()
        for system in systems:
            for folder in self.list_folders(f"{INBOX}{system}/"):
                try:
                    day = dt.date.fromisoformat(folder)
                except ValueError:
                    day = None
                # a folder that is no date is scanned too: its READY submissions are refused
                if day is None or folder != day.isoformat() or first <= day < date:
                    self._scan_prefix(f"{INBOX}{system}/{folder}/", scan)
        if ready_since is not None:
            keep = {k for k in scan.ready if scan.ready_at[k] >= ready_since}
            scan.ready = [k for k in scan.ready if k in keep]
            scan.files = {k: v for k, v in scan.files.items() if k in keep}
            scan.etags = {k: v for k, v in scan.etags.items() if k in keep}
        scan.ready.sort(key=str)
        scan.pending.sort(key=str)
        return scan

    def scan_ready_everywhere(self, source_systems: Iterable[str] | None = None) -> InboxScan:
        """Every READY submission of the whole inbox, whatever its date (the audit).

        Listing only, never a GET: one delimited listing per source system finds its date
        folders, then one paginated listing per date folder (1,000 keys a page). Only the keys,
        the ``_READY`` times and the refused folders are kept (no file sizes or ETags: the
        whole inbox's listing is never held in memory at once)."""
        systems = sorted(source_systems) if source_systems is not None else self.source_systems()
        scan = InboxScan()
        for system in systems:
            for folder in self.list_folders(f"{INBOX}{system}/"):
                part = InboxScan()
                self._scan_prefix(f"{INBOX}{system}/{folder}/", part)
                scan.ready.extend(part.ready)
                scan.pending.extend(part.pending)
                scan.ready_at.update(part.ready_at)
                scan.refused.update(part.refused)
        scan.ready.sort(key=str)
        scan.pending.sort(key=str)
        return scan

    def list_ready_submissions_before(
        self,
        date: dt.date,
        lookback_days: int = 7,
        source_systems: Iterable[str] | None = None,
        ready_since: dt.datetime | None = None,
    ) -> list[SubmissionKey]:
        """READY submissions dated in the ``lookback_days`` before ``date`` (see scan_inbox_before)."""
        return self.scan_inbox_before(date, lookback_days, source_systems, ready_since).ready

    # -- objects -----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None, *,
                  metadata: dict[str, str] | None = None) -> None:
        """Write the object; ``metadata``: S3 user metadata (ASCII names and values)."""
        extra = {"ContentType": content_type} if content_type else {}
        if metadata:
            extra["Metadata"] = metadata
        self._call("put_object", key, Key=key, Body=data, **extra)

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and its S3 user metadata, in one request."""
        resp = self._call("get_object", key, Key=key)
        return _read_body(resp, key), dict(resp.get("Metadata") or {})

    def put_text(self, key: str, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        self.put_bytes(key, text.encode("utf-8"), content_type)

    def put_json(self, key: str, obj: Any) -> None:
        """Write ``obj`` as UTF-8 JSON (sorted keys, stable bytes for the same content)."""
        data = json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2, default=str)
        self.put_bytes(key, data.encode("utf-8"), "application/json")

    def get_bytes(self, key: str, max_bytes: int | None = None, *, etag: str | None = None) -> bytes:
        """The object's bytes; with ``max_bytes``, refuse (without reading it all) anything larger;
        with ``etag``, only that version of it (:class:`ObjectChanged` if it was replaced)."""
        pinned = {"IfMatch": etag} if etag else {}
        if max_bytes is None:
            return _read_body(self._call("get_object", key, Key=key, **pinned), key)
        try:
            resp = self._call("get_object", key, Key=key, Range=f"bytes=0-{max_bytes}", **pinned)
        except StorageRefused as exc:  # a range on an empty object: 416 InvalidRange
            if exc.s3_code not in ("InvalidRange", "416"):
                raise
            resp = self._call("get_object", key, Key=key, **pinned)
        body = _read_body(resp, key, max_bytes + 1)
        total = _total_size(resp, len(body))
        if len(body) > max_bytes or total > max_bytes:
            raise ObjectTooLarge(f"object {key!r} is {total} bytes, more than the limit of {max_bytes}", key=key)
        return body

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key, Key=key)
        except ObjectNotFound:
            return False
        return True

    def delete_prefix(self, prefix: str, *, originals_final: bool = False) -> int:
        """Delete every object under ``prefix``; returns how many.

        Originals under ``inbox/`` may only go once their messages reach a final state: the
        caller says so with ``originals_final=True``, else :class:`InboxGuardError`.
        """
        if not prefix or not prefix.strip("/"):
            raise InboxGuardError("refusing to delete the whole bucket", key=prefix)
        if prefix.lstrip("/").startswith(INBOX.rstrip("/")) and not originals_final:
            raise InboxGuardError(
                "originals under inbox/ are kept until their messages are final", key=prefix
            )
        keys = list(self.list_objects(prefix))
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            resp = self._call(
                "delete_objects", prefix, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            if resp.get("Errors"):
                raise StorageUnavailable(f"{len(resp['Errors'])} deletes failed under {prefix!r}", key=prefix)
        return len(keys)


def _total_size(resp: dict, got: int) -> int:
    """The object's full size from a ranged GET (``Content-Range: bytes 0-N/TOTAL``)."""
    content_range = resp.get("ContentRange") or ""
    if "/" in content_range:
        try:
            return int(content_range.rsplit("/", 1)[1])
        except ValueError:
            pass
    return int(resp.get("ContentLength", got))


class S3Submission:
    """One submission folder in S3: a ``validation.SubmissionSource``.

    ``list_files`` costs one request (none when the inbox scan already listed the folder; a
    hostile folder is cut at :attr:`MAX_ENTRIES`). ``read`` refuses a file larger than
    ``max_bytes`` before fetching it. Given the ``etags`` of a listing, every read is pinned to
    that version of the file (``If-Match``): a file replaced since is ``FileChanged``, so what
    a later stage reads is what was validated. Problems with the submission itself raise validation's
    ``SourceError`` kinds (they become rejection reasons); S3 being unreachable raises
    :class:`StorageUnavailable`, which must fail the task (and retry), never reject a letter.
    """

    MAX_ENTRIES = 1000

    def __init__(self, store: ObjectStore, key: SubmissionKey, files: dict[str, int] | None = None,
                 etags: dict[str, str] | None = None) -> None:
        self.store = store
        self.key = key
        self._files = dict(files) if files is not None else None
        self._etags = dict(etags or {})

    def __repr__(self) -> str:
        return f"S3Submission({self.key})"

    def list_files(self) -> dict[str, int]:
        """File names (relative to the folder, ``_READY`` included) and sizes."""
        if self._files is None:
            prefix = self.key.prefix
            resp = self.store._call("list_objects_v2", prefix, Prefix=prefix, MaxKeys=self.MAX_ENTRIES)
            self._files = {o["Key"][len(prefix):]: o["Size"] for o in resp.get("Contents", ())}
        return dict(self._files)

    def read(self, name: str, max_bytes: int) -> bytes:
        """The file's bytes; ``FileTooLarge`` above ``max_bytes``, ``SourceError`` if absent."""
        from docpost.validation import FileChanged, FileTooLarge, SourceError, UnsafeFileName

        if "/" in name or "\\" in name or name in ("", ".", "..") or "\0" in name:
            raise UnsafeFileName("file names may not contain path parts")
        files = self.list_files()
        if name not in files:
            raise SourceError("the file is not in the submission folder")
        if files[name] > max_bytes:
            raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed")
        if files[name] == 0:
            return b""
        try:
            return self.store.get_bytes(self.key.prefix + name, max_bytes=max_bytes, etag=self._etags.get(name))
        except ObjectChanged:
            raise FileChanged("the file was replaced after the submission was marked _READY") from None
        except ObjectTooLarge:
            raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed") from None
        except ObjectNotFound:
            raise SourceError("the file disappeared from the submission folder") from None


class S3Sink:
    """Write many objects concurrently; a folder's ``_READY`` goes only after its other files.

    Callable as ``sink(relative_key, data)`` (the generator's sink); keys are put under
    ``prefix``. Use as a context manager, or call :meth:`close`, which waits for every write
    and raises the first failure. At most ``max_pending`` writes are held in memory.
    """

    def __init__(self, store: ObjectStore, prefix: str = "", *, workers: int = 16, max_pending: int = 256) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.written = 0
        _ = store.client  # create the shared client once, before the threads race for it
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docpost-s3sink")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()
        self._outstanding: dict[str, int] = {}  # folder -> writes in flight
        self._ready_waiting: set[str] = set()  # folders whose _READY waits for their writes
        self._ready_done: set[str] = set()
        self._futures: set[Future] = set()
        self._error: BaseException | None = None
        self._closed = False

    def __enter__(self) -> S3Sink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __call__(self, relative_key: str, data: bytes | str) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StorageError("the sink is closed")
        if isinstance(data, str):
            data = data.encode("utf-8")
        key = self.prefix + relative_key.lstrip("/")
        folder, _, name = key.rpartition("/")
        with self._lock:
            if folder in self._ready_done or folder in self._ready_waiting:
                raise SinkOrderError(f"{name!r} written after _READY in {folder!r}", key=key)
            if name == READY_MARKER:
                if self._outstanding.get(folder, 0) == 0:
                    self._ready_done.add(folder)
                else:
                    self._ready_waiting.add(folder)
                    return
            else:
                self._outstanding[folder] = self._outstanding.get(folder, 0) + 1
        self._submit(key, data, folder, is_ready=(name == READY_MARKER), slot=True)

    def _submit(self, key: str, data: bytes, folder: str, is_ready: bool, slot: bool) -> None:
        # A slot bounds the bytes held in memory; a _READY released by a worker takes none
        # (it is empty, and a worker waiting for a slot could deadlock the pool).
        if slot:
            self._slots.acquire()
        try:
            fut = self._pool.submit(self._put, key, data, folder, is_ready, slot)
        except BaseException:
            if slot:
                self._slots.release()
            raise
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._forget)

    def _forget(self, fut: Future) -> None:
        with self._lock:
            self._futures.discard(fut)

    def _put(self, key: str, data: bytes, folder: str, is_ready: bool, slot: bool) -> None:
        try:
            self.store.put_bytes(key, data)
            with self._lock:
                self.written += 1
        except BaseException as exc:  # surfaced on the next call or on close; no _READY follows
            self._error = self._error or exc
            return
        finally:
            if slot:
                self._slots.release()
        if is_ready:
            return
        with self._lock:
            self._outstanding[folder] -= 1
            release = self._outstanding[folder] == 0 and folder in self._ready_waiting
            if release:
                self._ready_waiting.discard(folder)
                self._ready_done.add(folder)
                del self._outstanding[folder]
        if release:
            self._submit(f"{folder}/{READY_MARKER}", b"", folder, is_ready=True, slot=False)

    def close(self) -> None:
        """Wait for every write (``_READY`` markers last) and raise the first failure."""
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                break
            for fut in pending:
                fut.result()
        self._closed = True
        self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
