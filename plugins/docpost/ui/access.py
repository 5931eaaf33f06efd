"""Who may do what in the operator view: Airflow's auth manager decides, nothing else.

The routes of a plugin's app are not authenticated by Airflow (apache/airflow#72655): every route
depends on one of these. The user comes from Airflow's token (the UI's ``_token`` cookie, or a
bearer token) through ``airflow.api_fastapi.core_api.security``:

- ``reader``: reading letters, nights and statistics = reading the runs of ``docpost_nightly``;
- ``content_reader``: a letter's PDF (its content) = the custom view :data:`CONTENT_VIEW`, which
  an auth manager with roles grants on its own (the simple auth manager lets every viewer);
- ``operator``: cancel and requeue = editing the runs of ``docpost_nightly``;
- ``reply_operator``: assigning an inbound message = editing the runs of ``docpost_replies``.

Every POST must also come from this site (:func:`same_origin`): its ``Origin`` (or, without
one, its ``Referer``) names the host the request was sent to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

NIGHTLY, REPLIES = "docpost_nightly", "docpost_replies"
CONTENT_VIEW = "docpost-letter-content"

# Airflow's API modules are imported when the app is built (first request), not with this module:
# they pull in the whole API server.


def _runs(method: str, dag_id: str):  # noqa: ANN202 - a FastAPI dependency
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag(method, DagAccessEntity.RUN, dag_id))


def reader():  # noqa: ANN201
    return _runs("GET", NIGHTLY)


def operator():  # noqa: ANN201
    return _runs("PUT", NIGHTLY)


def reply_operator():  # noqa: ANN201
    return _runs("PUT", REPLIES)


def may_read_content(user) -> bool:  # noqa: ANN001 - an auth manager's user
    """Whether ``user`` may see letters' content (their PDFs)."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_custom_view(method="GET", resource_name=CONTENT_VIEW, user=user)


def content_reader():  # noqa: ANN201
    from airflow.api_fastapi.core_api.security import get_user

    def check(user=Depends(get_user)) -> None:  # noqa: ANN001, B008
        if not may_read_content(user):
            raise HTTPException(403, "you may not see letters' content")

    return Depends(check)


def same_origin(request: Request) -> None:
    """Refuse (403) a POST whose ``Origin`` (else ``Referer``) is not this host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    if not source or not host or urlsplit(source).netloc != host:
        raise HTTPException(403, "refused: the request does not come from this site (Origin check)")


def actor(user) -> str:  # noqa: ANN001
    """How the ledger's history names an action from the view: the acting Airflow user."""
    return f"airflow-ui:{user.get_name()}"
