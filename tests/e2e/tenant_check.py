"""A schemathesis check (loaded through SCHEMATHESIS_HOOKS) for the fuzzing run with a tenant's
key: no response may carry a document the tenant cannot see. The test names those documents in
SEARCH_FORBIDDEN_IDS (comma-separated)."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

FORBIDDEN = [doc_id for doc_id in os.environ.get("SEARCH_FORBIDDEN_IDS", "").split(",") if doc_id]


@schemathesis.check
def no_other_tenants_document(ctx: Any, response: Any, case: Any) -> bool | None:
    text = response.text
    # A 404 names the id the client asked for: its own input, not a disclosure.
    for asked in (case.path_parameters or {}).values():
        text = text.replace(str(asked), "")
    shown = [doc_id for doc_id in FORBIDDEN if doc_id in text]
    if shown:
        raise AssertionError(f"the response carries another tenant's documents: {shown}")
    return None
