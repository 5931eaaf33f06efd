"""The submit API over real HTTP (uvicorn on loopback), on PostgreSQL and a moto S3 server: what it
accepts lands in the inbox layout and the ledger as a drop would, a repeat answers the same, other
content is a 409 conflict, hostile and broken uploads get their reason codes at once and never
reach the inbox, the status URL shows no personal data, and ``docpost submit`` speaks to it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from docpost_testbench.generate import build_submission
from docpost import serving
from docpost.ledger import Ledger, MessageState
from docpost.model import READY_MARKER
from docpost.sendnow.app import create_app
from docpost.sendnow.intake import Intake, today
from docpost.storage import ObjectStore

pytestmark = [pytest.mark.integration]

TOKEN = "sbsys-token-0123456789abcdef"
OTHER = "byg-token-0123456789abcdef0"


def letter(index: int, seed: int = 19) -> dict[str, bytes]:
    """A valid generated submission's files, without _READY (the API adds it)."""
    _key, files, _draft = build_submission(seed, today(), index)
    return {n: d for n, d in files.items() if n != READY_MARKER}


@pytest.fixture(scope="module")
def api(pg_url, s3_endpoint):
    """The API served by uvicorn in a thread, its intake on a fresh bucket and the session's database."""
    import uuid

    bucket = f"sendnow-{uuid.uuid4().hex[:10]}"
    env = {"DOCPOST_DB_URL": pg_url, "DOCPOST_BUCKET": bucket, "DOCPOST_S3_ENDPOINT_URL": s3_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        store = ObjectStore(bucket, endpoint_url=s3_endpoint, backend="boto3")
        store.ensure_bucket()
        ledger = Ledger(pg_url)
        ledger.upgrade()
        pokes: list[float] = []
        intake = Intake(ledger, store, on_registered=lambda: pokes.append(time.monotonic()))
        app = create_app(intake, {TOKEN: "sbsys", OTHER: "byggesag"})
        sock = serving.bind("127.0.0.1", 0)
        url = serving.url_of("127.0.0.1", sock.getsockname()[1], False)
        import uvicorn

        server = uvicorn.Server(serving.uvicorn_config(app, {}))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield {"url": url, "store": store, "ledger": ledger, "pokes": pokes, "env": env, "bucket": bucket}
        finally:
            server.should_exit = True
            thread.join(10)
            intake.close()


def post(api, sid: str, files: dict[str, bytes] | None = None, *, token: str = TOKEN, zip_body: bytes | None = None,
         headers: dict | None = None) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{api['url']}/v1/submissions/{sid}"
    if zip_body is not None:
        return httpx.post(url, content=zip_body, headers={**auth, "Content-Type": "application/zip", **(headers or {})})
    return httpx.post(url, headers={**auth, **(headers or {})},
                      files=[("files", (n, d, "application/octet-stream")) for n, d in (files or {}).items()])


def inbox(api, sid: str) -> dict[str, int]:
    return api["store"].list_objects(f"inbox/sbsys/{today().isoformat()}/{sid}/")


def test_accepted_lands_in_inbox_and_ledger_as_a_drop_and_repeats_answer_the_same(api):
    files = letter(1)
    first = post(api, "now-000001", files)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["accepted"] is True and body["repeat"] is False and body["state"] == "RECEIVED"
    assert body["status_url"] == f"{api['url']}/v1/messages/{body['message_uuid']}"
    assert first.headers["location"] == body["status_url"]
    stored = inbox(api, "now-000001")
    assert set(stored) == {f"inbox/sbsys/{today().isoformat()}/now-000001/{n}" for n in [*files, READY_MARKER]}
    prefix = f"inbox/sbsys/{today().isoformat()}/now-000001/"
    assert api["store"].get_bytes(prefix + "manifest.xml") == files["manifest.xml"]
    message = api["ledger"].get(body["message_uuid"])
    assert message.state is MessageState.RECEIVED and message.s3_prefix == prefix
    pokes = len(api["pokes"])
    assert pokes >= 1

    again = post(api, "now-000001", files)
    assert again.status_code == 202 and again.json() == {**body, "repeat": True}
    assert len(api["pokes"]) == pokes  # a repeat raises no new event

    other = dict(files, **{"manifest.xml": files["manifest.xml"] + b"\n"})
    clash = post(api, "now-000001", other)
    assert clash.status_code == 409 and clash.json()["codes"] == ["submission.conflict"]
    assert api["store"].get_bytes(prefix + "manifest.xml") == files["manifest.xml"]  # never overwritten
    assert [(c.submission_id, c.source_system) for c in api["ledger"].conflicts()] == [("now-000001", "sbsys")]
    assert len(api["ledger"].by_submission_id("now-000001")) == 1


def test_a_nightly_collect_of_the_folder_finds_it_known(api):
    from docpost import pipeline

    accepted = post(api, "now-000002", letter(2))
    assert accepted.status_code == 202
    with pytest.MonkeyPatch.context() as mp:
        for k, v in api["env"].items():
            mp.setenv(k, v)
        counts = pipeline.collect(today(), source_systems=["sbsys"], actor="test:collect")
    assert counts["new"] == 0 and counts["conflicts"] == 0 and counts["existing"] >= 1, counts
    assert len(api["ledger"].by_submission_id("now-000002")) == 1


def _zip(entries: dict[str, bytes], *, deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


XXE = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<Manifest xmlns="urn:docpost:manifest:1">&x;</Manifest>')


def _hostile_cases() -> list[tuple[str, dict, int, str]]:
    good = letter(3)
    bad_cpr = letter(4)
    manifest = bad_cpr["manifest.xml"].decode()
    import re

    cpr = re.search(r"<[^>]*CPRnummerIdentifikator>(\d{10})<", manifest) or re.search(r"CVRnummerIdentifikator>(\d{8})<", manifest)
    broken_id = manifest.replace(cpr.group(1), "3213999999" if len(cpr.group(1)) == 10 else "12345678")
    return [
        ("no-manifest", {"files": {k: v for k, v in good.items() if k != "manifest.xml"}}, 422, "manifest.missing"),
        ("xxe", {"files": {**good, "manifest.xml": XXE}}, 422, "xml.dtd-forbidden"),
        ("bad-identifier", {"files": {**bad_cpr, "manifest.xml": broken_id.encode()}}, 422, ""),
        ("traversal", {"zip_body": _zip({**good, "../evil.xml": b"<x/>"})}, 422, "filename.path-part"),
        ("bomb", {"zip_body": _zip({**good, "huge.pdf": b"\0" * (120 * 1024 * 1024)})}, 413, "submission.too-large"),
        ("not-a-zip", {"zip_body": b"PK\x03\x04 this is no zip"}, 400, "submit.bad-zip"),
        ("dup", {"zip_body": _dup_zip(good)}, 400, "submit.duplicate-file"),
        ("bad id!", {"files": good}, 400, "folder.bad-submission-id"),
        ("plain", {"files": None, "headers": {"Content-Type": "text/plain"}}, 415, "submit.unsupported-media-type"),
        ("no-token", {"files": good, "token": ""}, 401, "submit.unauthorized"),
        ("bad-token", {"files": good, "token": "x" * 30}, 401, "submit.unauthorized"),
    ]


def _dup_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("manifest.xml", files["manifest.xml"])
    return buf.getvalue()


def test_hostile_and_broken_submissions_get_their_codes_and_never_reach_the_inbox(api):
    before = api["store"].list_objects("inbox/")
    for sid, kwargs, status, code in _hostile_cases():
        answer = post(api, sid, **kwargs)
        assert answer.status_code == status, (sid, answer.status_code, answer.text[:500])
        body = answer.json()
        assert body["accepted"] is False and body["codes"], sid
        if code:
            assert code in body["codes"], (sid, body["codes"])
        else:
            assert any(c.startswith(("cpr.", "cvr.")) for c in body["codes"]), (sid, body["codes"])
        assert all({"code", "file", "line", "path", "message"} <= set(e) for e in body["errors"]), sid
    assert api["store"].list_objects("inbox/") == before
    assert not any("root:" in json.dumps(e) for e in body["errors"])


def test_status_url_shows_state_and_timeline_without_personal_data(api):
    files = letter(5)
    body = post(api, "now-000005", files).json()
    answer = httpx.get(body["status_url"], headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    status = answer.json()
    assert status["state"] == "RECEIVED" and status["message_uuid"] == body["message_uuid"]
    assert [t["state"] for t in status["timeline"]] == ["RECEIVED"]
    assert set(status) == {"message_uuid", "submission", "state", "channel", "receipt", "reason_code",
                           "submitted_at", "updated_at", "timeline"}
    import re

    manifest = files["manifest.xml"].decode()
    personal = re.findall(r"<[^>]*(?:CPRnummerIdentifikator|CVRnummerIdentifikator|Name|StreetName|Title)>([^<]+)<",
                          manifest)
    assert personal and not any(p in answer.text for p in personal)
    # another source system, or none, sees nothing
    assert httpx.get(body["status_url"], headers={"Authorization": f"Bearer {OTHER}"}).status_code == 404
    assert httpx.get(body["status_url"]).status_code == 401


def test_docpost_submit_command(api, tmp_path: Path):
    folder = tmp_path / "now-000006"
    folder.mkdir()
    for name, data in letter(6).items():
        (folder / name).write_bytes(data)
    (folder / READY_MARKER).write_bytes(b"")
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    cmd = [str(Path(sys.executable).parent / "docpost"), "submit", str(folder), "--url", api["url"],
           "--token-file", str(token), "--output", "json"]
    env = {**os.environ, "DOCPOST_SUBMIT_TOKEN": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["accepted"] and answer["http_status"] == 202 and answer["submission"].endswith("/now-000006")
    assert api["ledger"].get(answer["message_uuid"]).submission_id == "now-000006"

    (folder / "manifest.xml").write_bytes(XXE)
    refused = subprocess.run([*cmd[:3], "--id", "now-000007", *cmd[3:]], capture_output=True, text=True,
                             timeout=120, env=env)
    assert refused.returncode == 1
    assert "xml.dtd-forbidden" in json.loads(refused.stdout)["codes"]
    assert "docpost: error: xml.dtd-forbidden" in refused.stderr
    gone = subprocess.run([*cmd[:4], "http://127.0.0.1:9", *cmd[5:]], capture_output=True, text=True,
                          timeout=120, env=env)
    assert gone.returncode == 3 and "infrastructure.unavailable" in gone.stderr
