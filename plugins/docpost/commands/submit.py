"""Send now: ``docpost submit PATH --url URL`` sends one submission folder through the submit API
(for operators and tests), ``docpost sendnow serve`` runs that API (docs/send-now.md).

``sendnow serve`` prints one line once it accepts connections, ``docpost sendnow listening on
<url>`` (``--output json``: ``{"listening": url}``). ``submit`` prints the API's answer (message UUID, state and status URL; or every problem with its
reason code). Exit 0 accepted (a repeat too), 1 refused or a conflict, 2 a PATH that is no
submission folder, 3 the API or what is behind it unreachable (503). The token comes from
``--token-file`` or ``DOCPOST_SUBMIT_TOKEN``; a token is never a command-line argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, UsageError, add_output_argument, emit, note, port
from docpost.errors import ConfigurationError, Unavailable

READY = "_READY"


def read_folder(path: Path) -> dict[str, bytes]:
    """The regular files directly in a submission folder (``_READY`` and links left out)."""
    if not path.is_dir():
        raise UsageError(f"{path} is not a submission folder")
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())
            if p.is_file() and not p.is_symlink() and p.name != READY}


class SubmitClient:
    """The submit API at ``url`` for one source system (its ``token``): one HTTP client, its
    connections and TLS context kept for every :meth:`post` (thread-safe)."""

    def __init__(self, url: str, token: str, *, ca: str | None = None, cert: tuple[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(verify=ca or True, cert=cert, timeout=timeout)

    def post(self, submission_id: str, files: dict[str, bytes]) -> tuple[int, dict]:
        """One ``POST`` of ``files`` (multipart): (HTTP status, answer)."""
        import httpx

        from docpost.sendnow import SUBMIT_PATH

        try:
            resp = self._http.post(self.url + SUBMIT_PATH.format(submission_id=submission_id), headers=self._auth,
                                   files=[("files", (name, data, "application/octet-stream"))
                                          for name, data in files.items()])
        except httpx.HTTPError as exc:
            raise Unavailable(f"the submit API is unreachable ({type(exc).__name__})") from None
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {"accepted": False, "codes": [f"http.{resp.status_code}"], "errors": []}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SubmitClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _text(answer: dict) -> str:
    if answer.get("accepted"):
        lines = [f"accepted{' (again: the same submission)' if answer.get('repeat') else ''}: {answer['submission']}",
                 f"  message uuid  {answer['message_uuid']}", f"  state         {answer['state']}",
                 f"  status        {answer['status_url']}"]
        return "\n".join(lines)
    lines = ["refused:"]
    for e in answer.get("errors") or []:
        where = f"{e['file']}: " if e.get("file") else ""
        lines.append(f"  - [{e['code']}] {where}{e['message']}")
    return "\n".join(lines)


def submit(args: argparse.Namespace) -> int:
    from docpost.settings import settings

    path = Path(args.path)
    files = read_folder(path)
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    else:
        secret = settings().submit_token
        if secret is None:
            raise ConfigurationError("no token: give --token-file or set DOCPOST_SUBMIT_TOKEN", code="config.missing")
        token = secret.get_secret_value()
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together")
    with SubmitClient(args.url, token, ca=args.ca, cert=(args.cert, args.key) if args.cert else None) as client:
        status, answer = client.post(args.id or path.name, files)
    if status >= 500:
        raise Unavailable(f"the submit API answered {status}: "
                          + ", ".join(answer.get("codes") or ["unavailable"]) + "; nothing was accepted")
    answer["http_status"] = status
    emit(args, answer, text=_text)
    if status == 202:
        return EXIT_OK
    note(f"docpost: error: {(answer.get('codes') or ['http.' + str(status)])[0]}: the submit API refused the "
         f"submission (HTTP {status})")
    return EXIT_PROBLEM


def serve(args: argparse.Namespace) -> int:
    from docpost.sendnow import READY_PREFIX
    from docpost.sendnow.service import serve as run
    from docpost.settings import settings

    def announce(url: str) -> None:  # the one line of data: where it listens (a supervisor reads it)
        emit(args, {"listening": url}, text=lambda d: READY_PREFIX + d["listening"])
        sys.stdout.flush()

    s = settings()
    run(args.host if args.host is not None else s.sendnow_host,
        args.port if args.port is not None else s.sendnow_port,
        s.sendnow_cert, s.sendnow_key, s.sendnow_client_ca, announce=announce)
    return EXIT_OK


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "submit", help="send one submission folder through the submit API (send now)",
        description="POST the files of a submission folder (manifest.xml, letter text, PDFs, att.xml, s&d.xml; "
                    "_READY is not sent) to the submit API and print its answer: the message UUID and status "
                    "URL, or every problem with its reason code.")
    p.add_argument("path", help="the submission folder")
    p.add_argument("--url", required=True, help="the submit API's base URL, e.g. https://docpost.example:8607")
    p.add_argument("--id", help="submission id (default: the folder's name)")
    p.add_argument("--token-file", help="file holding the source system's token (default: DOCPOST_SUBMIT_TOKEN)")
    p.add_argument("--ca", help="CA bundle to verify the API's certificate (default: the system's)")
    p.add_argument("--cert", help="client certificate, PEM (mutual TLS)")
    p.add_argument("--key", help="its private key, PEM")
    add_output_argument(p)
    p.set_defaults(func=submit)

    server = subparsers.add_parser("sendnow", help="the submit API (send now)")
    sub = server.add_subparsers(dest="sendnow_command", metavar="ACTION", required=True)
    s = sub.add_parser(
        "serve", help="serve the submit API until interrupted",
        description="Take submissions from source systems (bearer token per source system, DOCPOST_SENDNOW_TOKENS; "
                    "HTTPS and mutual TLS with DOCPOST_SENDNOW_CERT/_KEY/_CLIENT_CA), validate, store and register "
                    "each at once, and raise the docpost_now asset event in Airflow (DOCPOST_AIRFLOW_API_URL).")
    s.add_argument("--host", help="address to listen on (default: DOCPOST_SENDNOW_HOST, 127.0.0.1)")
    s.add_argument("--port", type=port, help="port (default: DOCPOST_SENDNOW_PORT, 8607; 0: any free port)")
    add_output_argument(s)
    s.set_defaults(func=serve)
