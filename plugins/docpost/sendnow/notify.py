"""The ``docpost_now`` asset event, raised through Airflow's REST API (``POST /api/v2/assets/events``).

A burst of submissions is not a burst of runs: :meth:`AssetNotifier.poke` only marks that letters
wait, and one background thread posts one event for everything marked since its last post (at most
one post per ``interval``). Airflow's scheduler adds to that: an asset-triggered DAG at its
``max_active_runs`` is deferred, and the events queued meanwhile start a single next run. A post
that fails is tried again with backoff; the letters are registered either way, so at worst the
nightly run takes them.
"""

from __future__ import annotations

import logging
import threading
import time

from docpost.errors import Unavailable, describe
from docpost.sendnow import ASSET_NAME

log = logging.getLogger(__name__)


class AirflowAssets:
    """Airflow's REST API, as far as asset events go: a JWT from ``/auth/token``, the asset's id
    looked up by name once, one ``POST /api/v2/assets/events`` per event."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._login = {"username": user, "password": password}
        self._token: str | None = None
        self._asset_id: int | None = None

    def _request(self, method: str, path: str, **kwargs):  # noqa: ANN201 - httpx.Response
        import httpx

        for attempt in (1, 2):
            try:
                if self._token is None:
                    resp = self._http.post("/auth/token", json=self._login)
                    if resp.status_code not in (200, 201):
                        raise Unavailable(f"Airflow refused the login (HTTP {resp.status_code})")
                    self._token = resp.json()["access_token"]
                resp = self._http.request(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            except httpx.HTTPError as exc:
                raise Unavailable(f"Airflow's API is unreachable ({type(exc).__name__})") from None
            if resp.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if resp.status_code >= 300:
                raise Unavailable(f"Airflow answered HTTP {resp.status_code} to {method} {path}")
            return resp
        raise AssertionError("unreachable")

    def asset_id(self) -> int:
        if self._asset_id is None:
            found = self._request("GET", "/api/v2/assets", params={"name_pattern": ASSET_NAME, "limit": 100}).json()
            ids = [a["id"] for a in found.get("assets", ()) if a.get("name") == ASSET_NAME]
            if not ids:
                raise Unavailable(f"Airflow knows no asset {ASSET_NAME!r} yet (is docpost_now parsed?)")
            self._asset_id = ids[0]
        return self._asset_id

    def post_event(self, extra: dict) -> None:
        self._request("POST", "/api/v2/assets/events", json={"asset_id": self.asset_id(), "extra": extra})

    def close(self) -> None:
        self._http.close()


class AssetNotifier:
    """Coalesces pokes into asset events, posted from one daemon thread."""

    def __init__(self, assets: AirflowAssets | None, *, interval: float = 1.0, max_backoff: float = 60.0) -> None:
        self.assets, self.interval, self.max_backoff = assets, interval, max_backoff
        self._cond = threading.Condition()
        self._waiting = 0
        self._stopped = False
        self.posted = 0
        self.failures = 0
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Mark one more registered letter; the next event carries it."""
        if self.assets is None:
            return
        with self._cond:
            self._waiting += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sendnow-notify", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        backoff = self.interval
        while True:
            with self._cond:
                while not self._waiting and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                letters, self._waiting = self._waiting, 0
            try:
                self.assets.post_event({"letters": letters})
                self.posted += 1
                backoff = self.interval
                log.info("sendnow: asset event raised for %d letter(s)", letters)
            except Exception as exc:  # noqa: BLE001 - Airflow away: the letters wait, the event is tried again
                self.failures += 1
                with self._cond:
                    self._waiting += letters
                log.warning("sendnow: asset event not raised (%s); trying again in %.0f s", describe(exc), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            time.sleep(self.interval)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self.assets is not None:
            self.assets.close()


def from_settings() -> AssetNotifier:
    """The notifier of ``DOCPOST_AIRFLOW_API_URL`` / ``_USER`` / ``_PASSWORD`` (unset: none, said once)."""
    from docpost.settings import settings

    s = settings()
    if not s.airflow_api_url:
        log.warning("sendnow: DOCPOST_AIRFLOW_API_URL is not set: no docpost_now event is raised; "
                    "accepted letters wait for the nightly run")
        return AssetNotifier(None)
    password = s.airflow_api_password.get_secret_value() if s.airflow_api_password else ""
    return AssetNotifier(AirflowAssets(s.airflow_api_url, s.airflow_api_user or "", password))
