"""SF1606 "Modtag post": the endpoint the Postkomponent calls with citizens' messages (PostModtag).

:mod:`.wire` (the one module that knows the wire format), :mod:`.app` (the FastAPI app:
parse safely, store durably, answer), :mod:`.service` (:func:`~.service.serve`: uvicorn with
mutual TLS). See docs/reply-routing.md.
"""
