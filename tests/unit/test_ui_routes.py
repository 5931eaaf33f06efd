"""The operator view's routes (docpost.ui) through FastAPI's TestClient, with Airflow's own
authentication: the simple auth manager, real JWTs, and a migrated Airflow metadata database
(SQLite, a copy of the bench's template) for what the auth manager reads (revoked tokens, DAG
teams). The ledger is PostgreSQL, S3 the moto server.

Airflow is configured for this module in this process (``conf.set`` and a new ORM) and put back
after it, so that the rest of the session sees the configuration it had.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import shutil
import uuid

import pytest
from pg_support import fresh_schema

from docpost.ledger import Ledger, MessageState, Receipt, Registration

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

NIGHT = dt.date(2026, 3, 2)
CPR = "0101901234"
S = MessageState
USERS = {"viewer": "viewer", "clerk": "user", "nobody": None}


@pytest.fixture(scope="module")
def airflow_auth(tmp_path_factory):
    """Airflow's auth manager in this process on a scratch metadata database; returns
    ``token(user)``."""
    from docpost_testbench.stack import AUTH_MANAGER, metadata_db_template

    from airflow import settings as airflow_settings
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.configuration import conf

    db = tmp_path_factory.mktemp("airflow") / "airflow.db"
    shutil.copyfile(metadata_db_template(), db)
    wanted = {("database", "sql_alchemy_conn"): f"sqlite:///{db}", ("core", "auth_manager"): AUTH_MANAGER,
              ("api_auth", "jwt_secret"): secrets.token_urlsafe(64)}
    before = {key: conf.get(*key, fallback=None) for key in wanted}
    for (section, key), value in wanted.items():
        conf.set(section, key, value)
    airflow_settings.configure_vars()
    airflow_settings.configure_orm()
    manager_before = api_app._AuthManagerState.instance
    api_app._AuthManagerState.instance = None
    manager = api_app.create_auth_manager()
    try:
        yield lambda name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=USERS[name]))
    finally:
        api_app._AuthManagerState.instance = manager_before
        for (section, key), value in before.items():
            if value is None:
                conf.remove_option(section, key)
            else:
                conf.set(section, key, value)
        airflow_settings.dispose_orm()
        airflow_settings.configure_vars()
        airflow_settings.configure_orm()


@pytest.fixture(scope="module")
def world(pg_url, s3_endpoint):
    """A ledger with one night: a FAILED letter (with a receipt), a RENDERED one with its PDF in
    S3, a SUBMITTED one and a REJECTED one with its report; the bucket beside it."""
    from docpost.pipeline import rendered_key
    from docpost.storage import ObjectStore

    fresh_schema(pg_url)
    ledger = Ledger(pg_url)
    ledger.upgrade()
    store = ObjectStore(f"docpost-ui-{uuid.uuid4().hex[:8]}", endpoint_url=s3_endpoint, backend="boto3")
    store.ensure_bucket()

    def register(sid: str, source: str, doc_type: str, case: str, recipient: str = CPR) -> int:
        reg = Registration(source, sid, NIGHT, uuid.uuid4().hex * 2, f"inbox/{source}/{NIGHT}/{sid}/",
                           "CPR", recipient, case_number=case, document_type=doc_type, title="Afgørelse om hjemmehjælp")
        return ledger.register([reg], actor="test").ids[0]

    failed = register("ui-1", "sbsys", "afgoerelse", "SAG-2026-0001")
    rendered = register("ui-2", "momentum", "afgoerelse", "SAG-2026-0002", "0202902345")
    submitted = register("ui-3", "opus-debitor", "rykker", "SAG-2026-0003", "0303903456")
    rejected = register("ui-4", "sbsys", "kvittering", "SAG-2026-0004", "0404904567")
    run = "dag:docpost_nightly/scheduled__2026-03-02"
    for mid in (failed, rendered, submitted):
        ledger.transition([mid], S.VALIDATED, run)
        ledger.transition([mid], S.STAMPED, run, reply_type="angivet", reply_postkasse_id=100, reply_emne_id=1004)
        ledger.transition([mid], S.RENDERED, run, pdf_sha256="ab" * 32 if mid == rendered else None)
    ledger.transition([failed], S.SUBMITTED, run, channel="digital")
    ledger.transition([submitted], S.SUBMITTED, run)
    ledger.apply_receipts([Receipt(ledger.messages([failed])[0].message_uuid, S.FAILED, "digital",
                                   "Fejlet", "MAILBOX_CLOSED", "postkasse lukket for 0101901234")])
    ledger.reject(rejected, "manifest.invalid-recipient", "the recipient 0404904567 is not a CPR", actor="test")
    by_id = {m.id: m for m in ledger.messages([failed, rendered, submitted, rejected])}
    store.put_bytes(rendered_key(by_id[rendered].ref), b"%PDF-1.7 the letter", "application/pdf")
    store.put_json(f"rejected/sbsys/{NIGHT}/ui-4/rejection.json", {
        "submission": f"sbsys/{NIGHT}/ui-4", "stage": "validate", "valid": False,
        "errors": [{"code": "manifest.invalid-recipient", "file": "manifest.xml", "line": 7,
                    "path": "/Manifest/Recipient/Id", "message": "0404904567 is no valid CPR number"}]})
    yield ledger, store, {"failed": by_id[failed], "rendered": by_id[rendered], "submitted": by_id[submitted],
                          "rejected": by_id[rejected]}
    ledger.close()


@pytest.fixture(scope="module")
def client(airflow_auth, world):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from docpost.ui.app import create_app
    from docpost.ui.plugin import URL_PREFIX

    ledger, store, _ = world
    airflow = FastAPI()  # mounted as Airflow's API server mounts a plugin's app
    airflow.mount(URL_PREFIX, create_app(lambda: ledger, lambda: store))
    with TestClient(airflow, base_url=f"http://airflow.test{URL_PREFIX}") as c:
        yield c


def as_user(name: str, token) -> dict:  # noqa: ANN001
    return {"Authorization": f"Bearer {token(name)}"}


ORIGIN = {"Origin": "http://airflow.test"}


def test_every_route_refuses_a_request_without_a_token(client, world):
    m = world[2]["failed"].message_uuid
    for method, path in [("GET", "/"), ("GET", f"/letter/{m}"), ("GET", f"/letter/{m}/pdf"),
                         ("GET", f"/night/{NIGHT}"), ("GET", "/stats?month=2026-03"), ("GET", "/stats.csv?month=2026-03"),
                         ("GET", "/replies"), ("GET", f"/run/docpost_nightly/manual__x"),
                         ("POST", "/search"), ("POST", f"/letter/{m}/requeue"), ("POST", f"/letter/{m}/cancel"),
                         ("POST", "/replies/x/assign")]:
        resp = client.request(method, path, headers=ORIGIN, data={"q": "SAG-2026-0001", "reason": "x", "emne": "1001"})
        assert resp.status_code == 401, (method, path, resp.status_code)
    forged = client.get("/", headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403
    assert client.get("/static/docpost.css").status_code == 200  # the stylesheet holds no data


def test_a_user_without_a_role_is_refused_by_the_auth_manager(client, airflow_auth):
    assert client.get("/", headers=as_user("nobody", airflow_auth)).status_code == 403


def test_search_by_case_number_shows_the_letter_masked(client, world, airflow_auth):
    resp = client.post("/search", data={"q": "SAG-2026-0001"}, headers={**as_user("viewer", airflow_auth), **ORIGIN})
    assert resp.status_code == 200
    failed = world[2]["failed"]
    assert failed.message_uuid in resp.text and "010190-****" in resp.text
    assert CPR not in resp.text and "hjemmehjælp" not in resp.text  # neither the number nor the title
    assert f'href="/docpost/letter/{failed.message_uuid}"' in resp.text  # links below the mount
    assert 'href="/docpost/static/docpost.css"' in resp.text


def test_search_by_cpr_goes_through_the_keyed_hash_and_never_shows_it(client, world, airflow_auth):
    resp = client.post("/search", data={"q": "010190-1234"}, headers={**as_user("viewer", airflow_auth), **ORIGIN})
    assert resp.status_code == 200
    assert world[2]["failed"].message_uuid in resp.text
    assert world[2]["rendered"].message_uuid not in resp.text
    assert "1234" not in resp.text.replace(world[2]["failed"].message_uuid, "")
    assert "CPR 010190-****" in resp.text


def test_a_search_from_another_site_is_refused(client, airflow_auth):
    headers = as_user("viewer", airflow_auth)
    assert client.post("/search", data={"q": "x"}, headers=headers).status_code == 403  # no Origin
    assert client.post("/search", data={"q": "x"}, headers={**headers, "Origin": "http://evil.test"}).status_code == 403


def test_letter_page_shows_timeline_receipt_and_reasons_without_personal_data(client, world, airflow_auth):
    failed = world[2]["failed"]
    resp = client.get(f"/letter/{failed.message_uuid}", headers=as_user("viewer", airflow_auth))
    assert resp.status_code == 200
    text = resp.text
    for expected in ("dag:docpost_nightly/scheduled__2026-03-02", "SUBMITTED", "FAILED", "Fejlet", "MAILBOX_CLOSED",
                     "Requeue", "010190-****"):
        assert expected in text, expected
    assert CPR not in text
    assert "Cancel" not in text.split("<h2>Timeline")[0].split("</dl>")[1]  # not for a FAILED letter


def test_pdf_preview_needs_the_content_view_and_a_rendered_letter(client, world, airflow_auth):
    rendered, failed = world[2]["rendered"], world[2]["failed"]
    ok = client.get(f"/letter/{rendered.message_uuid}/pdf", headers=as_user("viewer", airflow_auth))
    assert ok.status_code == 200 and ok.content == b"%PDF-1.7 the letter"
    assert ok.headers["content-type"] == "application/pdf" and ok.headers["cache-control"] == "no-store"
    assert client.get(f"/letter/{failed.message_uuid}/pdf", headers=as_user("viewer", airflow_auth)).status_code == 404
    assert client.get(f"/letter/{rendered.message_uuid}/pdf", headers=as_user("nobody", airflow_auth)).status_code == 403


def test_requeue_needs_permission_origin_and_records_the_user(client, world, airflow_auth):
    ledger, _, letters = world
    failed = letters["failed"]
    path = f"/letter/{failed.message_uuid}/requeue"
    assert client.get(path, headers=as_user("clerk", airflow_auth)).status_code == 200  # the confirmation
    assert client.post(path, data={"reason": "postkasse åbnet igen"},
                       headers={**as_user("viewer", airflow_auth), **ORIGIN}).status_code == 403  # a viewer may not
    assert client.post(path, data={"reason": "x"}, headers=as_user("clerk", airflow_auth)).status_code == 403  # no Origin
    assert ledger.get(failed.message_uuid).state is S.FAILED
    done = client.post(path, data={"reason": "postkasse åbnet igen"}, follow_redirects=False,
                       headers={**as_user("clerk", airflow_auth), **ORIGIN})
    assert done.status_code == 303
    now = ledger.get(failed.message_uuid)  # found by its earlier messageUUID too
    assert now.state is S.STAMPED and now.generation == 1 and now.message_uuid != failed.message_uuid
    assert done.headers["location"] == f"/docpost/letter/{now.message_uuid}?done=requeued"
    last = ledger.history(now.id)[-1]
    assert last.actor == "airflow-ui:clerk" and "postkasse åbnet igen" in last.detail
    page = client.get(done.headers["location"].removeprefix("/docpost"), headers=as_user("viewer", airflow_auth)).text
    assert "Earlier generations" in page and failed.message_uuid in page and "airflow-ui:clerk" in page
    again = client.post(path, data={}, headers={**as_user("clerk", airflow_auth), **ORIGIN})
    assert again.status_code == 409 and "ledger.illegal-transition" in again.text  # no longer FAILED


def test_cancel_before_sending_only(client, world, airflow_auth):
    ledger, _, letters = world
    headers = {**as_user("clerk", airflow_auth), **ORIGIN}
    sent = client.post(f"/letter/{letters['submitted'].message_uuid}/cancel", data={"reason": "fejl i brevet"},
                       headers=headers)
    assert sent.status_code == 409 and "only a message not yet submitted can be cancelled" in sent.text
    assert client.post(f"/letter/{letters['rendered'].message_uuid}/cancel", data={"reason": ""},
                       headers=headers).status_code == 422  # a reason is required
    done = client.post(f"/letter/{letters['rendered'].message_uuid}/cancel", data={"reason": "fejl i brevet"},
                       headers=headers, follow_redirects=False)
    assert done.status_code == 303
    m = ledger.get(letters["rendered"].message_uuid)
    assert m.state is S.CANCELLED and ledger.history(m.id)[-1].actor == "airflow-ui:clerk"


def test_night_page_counts_departments_and_readable_rejections(client, airflow_auth):
    resp = client.get(f"/night/{NIGHT}", headers=as_user("viewer", airflow_auth))
    assert resp.status_code == 200
    text = resp.text
    assert "<svg" in text and "By department" in text
    for department in ("Borgerservice", "Jobcenter Søby", "Skat og Opkrævning"):  # config/profiles.xml
        assert department in text, department
    assert "manifest.invalid-recipient" in text and "manifest.xml:7" in text and "/Manifest/Recipient/Id" in text
    assert "040490-**** is no valid CPR number" in text and "0404904567" not in text  # the report, scrubbed
    assert "http" not in text.split("<body>")[0].replace("http://airflow.test", "")  # nothing from elsewhere


def test_month_statistics_and_csv(client, world, airflow_auth):
    resp = client.get("/stats.csv?month=2026-03", headers=as_user("viewer", airflow_auth))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = {r["department"]: r for r in csv.DictReader(io.StringIO(resp.text))}
    assert set(rows) == {"Borgerservice", "Jobcenter Søby", "Skat og Opkrævning"}
    assert rows["Borgerservice"]["letters"] == "2" and rows["Borgerservice"]["rejected"] == "1"
    assert rows["Borgerservice"]["rejection_rate"] == "0.5000"
    assert rows["Borgerservice"]["physical_share"] == ""  # nothing delivered yet
    assert rows["Skat og Opkrævning"]["in_progress"] == "1"
    page = client.get("/stats?month=2026-03", headers=as_user("viewer", airflow_auth))
    assert page.status_code == 200 and "50.0 %" in page.text and "all departments" in page.text
    assert client.get("/stats.csv?month=2026-13", headers=as_user("viewer", airflow_auth)).status_code == 422
    empty = client.get("/stats.csv?month=2025-01", headers=as_user("viewer", airflow_auth))
    assert empty.text.strip() == ",".join(("month", "department", "letters", "digital", "physical", "physical_share",
                                           "rejected", "rejection_rate", "failed", "in_progress"))


def test_run_tab_of_another_dag_says_so(client, airflow_auth):
    resp = client.get("/run/docpost_replies/manual__1", headers=as_user("viewer", airflow_auth))
    assert resp.status_code == 404 and "ui.not-a-night" in resp.text


@pytest.fixture(scope="module")
def manual_item(world, tmp_path_factory):
    """A citizen's new message to a contact point the hierarchy does not know: in the manual
    queue after a routing pass; mails go to a loopback SMTP sink."""
    from docpost_testbench.mailsink import start_mailsink
    from docpost_testbench.simulator.inbound import build_inbound_memo

    from docpost.replies.service import process_inbound
    from docpost.replies.store import ReplyStore

    ledger = world[0]
    sink = start_mailsink(tmp_path_factory.mktemp("mails"))
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCPOST_SMTP_HOST", sink.host)
    mp.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    memo = build_inbound_memo(message_uuid=str(uuid.uuid4()), sender_id=CPR, sender_id_type="CPR",
                              municipality_cvr="29189846", label="Spørgsmål om min sag", text="Hej",
                              created=dt.datetime.now(dt.UTC), contact_point_id=str(uuid.uuid4()))
    inbound_id = f"ui-inbound-{uuid.uuid4().hex[:8]}"
    ReplyStore(ledger).receive(inbound_id, memo)
    process_inbound("test:route", ledger=ledger)
    assert ReplyStore(ledger).get(inbound_id).state == "MANUAL"
    yield inbound_id, sink
    sink.stop()
    mp.undo()


def test_assign_a_manual_queue_item_to_an_emne(client, world, manual_item, airflow_auth):
    from docpost.replies.store import ReplyStore

    inbound_id, sink = manual_item
    queue = client.get("/replies", headers=as_user("viewer", airflow_auth))
    assert queue.status_code == 200 and inbound_id in queue.text and "route.unknown-contact-point" in queue.text
    assert CPR not in queue.text and "010190-****" in queue.text
    assert client.get(f"/replies/{inbound_id}/assign?emne=1001", headers=as_user("clerk", airflow_auth)).status_code == 200
    path = f"/replies/{inbound_id}/assign"
    assert client.post(path, data={"emne": "1001"}, headers={**as_user("viewer", airflow_auth), **ORIGIN}).status_code == 403
    assert client.post(path, data={"emne": "1001"}, headers=as_user("clerk", airflow_auth)).status_code == 403
    refused = client.post(path, data={"emne": "9999"}, headers={**as_user("clerk", airflow_auth), **ORIGIN})
    assert refused.status_code == 409 and "replies.assign-refused" in refused.text
    done = client.post(path, data={"emne": "1001"}, headers={**as_user("clerk", airflow_auth), **ORIGIN},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/docpost/replies?done={inbound_id}"
    record = ReplyStore(world[0]).get(inbound_id)
    assert record.emne_id == 1001 and record.assigned_by == "airflow-ui:clerk" and record.state == "MAILED"
    assert len(sink.messages()) == 1
