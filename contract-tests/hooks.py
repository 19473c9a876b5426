"""Schemathesis hooks, loaded through `SCHEMATHESIS_HOOKS` by `run.py`.

`Idempotency-Key` promises one request per key: the server answers a key reused with a different
body with 422, as the spec documents. Schemathesis cannot know that, and draws keys from a small
space (and the examples phase sends the spec's one example key with every body), so it would
reuse keys and report the documented 422 as a valid request refused. Every *valid* key it
generates is therefore replaced by a fresh UUID, as a real client does per request; invalid keys
(negative cases) are sent as generated, so their 400 is still checked.
"""

import re
import uuid

import schemathesis

HEADER = "idempotency-key"
VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(context, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER and isinstance(value, str) and VALID_KEY.fullmatch(value):
            headers[name] = str(uuid.uuid4())
