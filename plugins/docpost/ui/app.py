"""The operator view's FastAPI app (mounted by the plugin under ``/docpost``).

Pages are server-rendered (Jinja2, templates and CSS in this package; no script from elsewhere, so
the view works offline). Searches are POSTed, so that a CPR/CVR never lands in a URL or an access
log. Every action is a confirmation page (GET) and a POST that checks Origin and permission, and
records the acting Airflow user in the ledger's history.
"""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from docpost.errors import ConfigurationError, DocpostError, Unavailable
from docpost.ui import access, queries

HERE = Path(__file__).parent
#: the letter actions that have a confirmation page, and their labels
ACTIONS = {"cancel": "Cancel", "requeue": "Requeue"}


def _default_ledger():
    from docpost.ledger import shared_ledger

    return shared_ledger()


def _default_store():
    from docpost.storage import ObjectStore

    return ObjectStore()


def night_of_run(dag_id: str, run_id: str) -> dt.date | None:
    """The night a run of ``docpost_nightly`` handles (its ``night`` param, else its data
    interval's start in Copenhagen, as the DAG decides), read from Airflow's metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from docpost.dag_defaults import night_of

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        night = (run.conf or {}).get("night")
        start = run.data_interval_start or run.logical_date
    return night_of(night, start)


def create_app(ledger: Callable[[], Any] = _default_ledger, store: Callable[[], Any] = _default_store) -> FastAPI:
    """The app; ``ledger`` and ``store`` give the ledger and the S3 store (the configured ones).

    Route signatures are evaluated here (no postponed annotations in this module): FastAPI reads
    Airflow's ``GetUserDep``, imported with the app, not with the module."""
    from airflow.api_fastapi.core_api.security import GetUserDep

    reader, operator, reply_operator, same_origin = (
        access.reader(), access.operator(), access.reply_operator(), Depends(access.same_origin))
    app = FastAPI(title="docpost operator view", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["words"] = queries.reason_words
    templates.env.filters["when"] = lambda v: v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if v else "-"
    templates.env.filters["percent"] = lambda v: "-" if v is None else f"{100 * v:.1f} %"
    templates.env.filters["source_total"] = lambda item: (item[0], sum(item[1].values()))
    templates.env.filters["state_split"] = queries.state_split
    templates.env.filters["zip_with"] = zip
    templates.env.globals["timedelta"] = dt.timedelta

    def url(request: Request, name: str, **params: Any) -> str:
        """A path of this app below where it is mounted (``request.url_for`` would look the name
        up in Airflow's app, which mounts this one)."""
        return request.scope.get("root_path", "") + app.url_path_for(name, **params)

    templates.env.globals["url_for"] = jinja2.pass_context(lambda ctx, name, **params: url(ctx["request"], name, **params))

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    @app.exception_handler(DocpostError)
    async def refused(request: Request, exc: DocpostError) -> HTMLResponse:
        # docpost's messages carry no personal data (docpost.errors); infrastructure is a 503
        status = 503 if isinstance(exc, (Unavailable, ConfigurationError)) else 409
        return page(request, "error.html", status, code=exc.code, message=exc.message)

    def found(message_uuid: str) -> queries.Letter:
        letter = queries.letter(ledger(), message_uuid)
        if letter is None:
            raise HTTPException(404, "no such letter")
        return letter

    @app.get("/", response_class=HTMLResponse, dependencies=[reader])
    def home(request: Request) -> HTMLResponse:
        today = dt.date.today()
        return page(request, "home.html", night=today - dt.timedelta(days=1), month=today.strftime("%Y-%m"))

    @app.post("/search", response_class=HTMLResponse, dependencies=[reader, same_origin])
    def search(request: Request, q: Annotated[str, Form(max_length=200)]) -> HTMLResponse:
        shown, letters = queries.search(ledger(), q)
        return page(request, "search.html", query=shown, letters=letters)

    @app.get("/letter/{message_uuid}", response_class=HTMLResponse, dependencies=[reader])
    def letter(request: Request, message_uuid: str, user: GetUserDep, done: str | None = None) -> HTMLResponse:
        return page(request, "letter.html", letter=found(message_uuid), done=done,
                    content=access.may_read_content(user))

    @app.get("/letter/{message_uuid}/pdf", dependencies=[reader, access.content_reader()])
    def pdf(message_uuid: str) -> Response:
        m = found(message_uuid).message
        if not m.pdf_sha256:
            raise HTTPException(404, "this letter has no rendered PDF")
        from docpost.storage import ObjectNotFound

        try:
            data = store().get_bytes(queries.pdf_key(m))
        except ObjectNotFound:
            raise HTTPException(404, "the rendered PDF is not in S3 (purged, or rendered anew)") from None
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{m.message_uuid}.pdf"', "Cache-Control": "no-store"})

    @app.get("/letter/{message_uuid}/{action}", response_class=HTMLResponse, dependencies=[operator])
    def confirm(request: Request, message_uuid: str, action: str) -> HTMLResponse:
        if action not in ACTIONS:
            raise HTTPException(404, "no such action")
        return page(request, "confirm.html", letter=found(message_uuid), action=action, label=ACTIONS[action])

    @app.post("/letter/{message_uuid}/cancel", dependencies=[operator, same_origin])
    def cancel(request: Request, message_uuid: str, user: GetUserDep,
               reason: Annotated[str, Form(min_length=3, max_length=500)]) -> RedirectResponse:
        led = ledger()
        led.cancel([found(message_uuid).message.id], access.actor(user), reason)
        return RedirectResponse(url(request, 'letter', message_uuid=message_uuid) + '?done=cancelled', 303)

    @app.post("/letter/{message_uuid}/requeue", dependencies=[operator, same_origin])
    def requeue(request: Request, message_uuid: str, user: GetUserDep,
                reason: Annotated[str, Form(max_length=500)] = "") -> RedirectResponse:
        led = ledger()
        led.requeue([found(message_uuid).message.id], access.actor(user), reason or None)
        # the new generation has a new messageUUID (the earlier one still finds the letter)
        now = found(message_uuid).message.message_uuid
        return RedirectResponse(url(request, 'letter', message_uuid=now) + '?done=requeued', 303)

    @app.get("/night", dependencies=[reader])
    def night_form(request: Request, date: dt.date) -> RedirectResponse:
        return RedirectResponse(url(request, "night", date=date.isoformat()), 303)

    @app.get("/night/{date}", response_class=HTMLResponse, dependencies=[reader])
    def night(request: Request, date: dt.date) -> HTMLResponse:
        return page(request, "night.html", night=queries.night(ledger(), date, store=store()))

    @app.get("/run/{dag_id}/{run_id}", dependencies=[reader])
    def run(request: Request, dag_id: str, run_id: str) -> Response:
        if dag_id != access.NIGHTLY:
            return page(request, "error.html", 404, code="ui.not-a-night",
                        message=f"docpost's nights are the runs of {access.NIGHTLY}; this is a run of {dag_id}")
        date = night_of_run(dag_id, run_id)
        if date is None:
            raise HTTPException(404, "no such run")
        return RedirectResponse(url(request, "night", date=date.isoformat()), 303)

    @app.get("/stats", response_class=HTMLResponse, dependencies=[reader])
    def stats(request: Request, month: str | None = None) -> HTMLResponse:
        month = month or dt.date.today().strftime("%Y-%m")
        rows = _figures(month)
        return page(request, "stats.html", month=month, rows=rows,
                    total=queries.DepartmentFigures("all departments", *(sum(getattr(r, f) for r in rows) for f in (
                        "letters", "digital", "physical", "rejected", "failed", "in_progress"))))

    @app.get("/stats.csv", dependencies=[reader])
    def stats_csv(month: str) -> Response:
        return Response(queries.figures_csv(month, _figures(month)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="docpost-{month}.csv"'})

    def _figures(month: str) -> list[queries.DepartmentFigures]:
        try:
            return queries.month_figures(ledger(), month)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/replies", response_class=HTMLResponse, dependencies=[reader])
    def replies(request: Request, done: str | None = None) -> HTMLResponse:
        from docpost.hierarchy import load_hierarchy
        from docpost.replies.service import manual_queue

        today = dt.date.today()
        hierarchy = load_hierarchy()
        emner = [e for e in hierarchy.emner if not hierarchy.is_closed(e, today)]
        return page(request, "replies.html", queue=manual_queue(ledger=ledger()), emner=emner, done=done)

    @app.get("/replies/{inbound_id}/assign", response_class=HTMLResponse, dependencies=[reply_operator])
    def assign_confirm(request: Request, inbound_id: str, emne: int) -> HTMLResponse:
        from docpost.hierarchy import load_hierarchy
        from docpost.replies.store import ReplyStore

        record = ReplyStore(ledger()).get(inbound_id)
        target = load_hierarchy().emne(emne)
        if target is None:
            raise HTTPException(404, "no such Emne")
        return page(request, "assign.html", record=record, emne=target)

    @app.post("/replies/{inbound_id}/assign", dependencies=[reply_operator, same_origin])
    def assign(request: Request, inbound_id: str, user: GetUserDep,
               emne: Annotated[int, Form()]) -> RedirectResponse:
        from docpost.replies.service import assign as assign_one

        assign_one(inbound_id, emne, access.actor(user), ledger=ledger())
        return RedirectResponse(url(request, 'replies') + f'?done={inbound_id}', 303)

    return app
