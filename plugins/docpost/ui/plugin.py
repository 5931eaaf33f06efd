"""The Airflow plugin (entry point ``airflow.plugins``): the app under ``/docpost`` and its views.

Every Airflow component imports plugins, so this module stays cheap: the FastAPI app is built on
the first request the API server passes to it (:class:`LazyApp`), never at import.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/docpost"


class LazyApp:
    """An ASGI app that builds :func:`docpost.ui.app.create_app` on its first call."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            from docpost.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class DocpostPlugin(AirflowPlugin):
    """docpost's operator view: a FastAPI app and two external views of it."""

    name = "docpost"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "docpost operator view"}]
    external_views = [
        {"name": "docpost", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "docpost",
         "nav_top_level": True},
        {"name": "Letters of this night", "href": f"{URL_PREFIX}/run/{{DAG_ID}}/{{RUN_ID}}",
         "destination": "dag_run", "url_route": "docpost-night"},
    ]
