"""Send now: one letter from a caseworker's system, delivered within minutes, through the same
contract, ledger and stages as the nightly batch (docs/send-now.md).

:mod:`.intake` (validate one submission with the nightly's validator, write it to the inbox
layout, register it), :mod:`.notify` (the ``docpost_now`` asset event, raised through Airflow's
REST API, coalesced), :mod:`.app` (the FastAPI submit API and its status URL), :mod:`.service`
(serving it). Light: nothing heavy is imported here, so the DAG file may read the names below.
"""

#: The asset whose events start ``docpost_now``: the submit API raises one after it registered a letter.
#: Named only (its URI is its name): a URI with a scheme makes Airflow consult every provider at parse.
ASSET_NAME = "docpost_send_now"
#: The DAG that works on the letters waiting.
DAG_ID = "docpost_now"
#: Where the submit API answers (below its base URL).
SUBMIT_PATH = "/v1/submissions/{submission_id}"
STATUS_PATH = "/v1/messages/{message_uuid}"
HEALTH_PATH = "/health"
READY_PREFIX = "docpost sendnow listening on "
