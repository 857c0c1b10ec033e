"""Build claims. Replicas started together may all find a store missing and build it. Creating
a collection is no lock (a 2.3 server accepts a second create with the same schema), so each
builder creates a claim collection of its own and the earliest created (the server's timestamps
are totally ordered) builds; the others wait for its manifest. A Milvus Lite file is held by one
process, so it needs no claim. A reindex claims its new version the same way.
"""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import TYPE_CHECKING

from indexer.stores.base import StoreExistsError, StoreUnavailableError
from indexer.stores.milvus.client import MilvusTarget, call, drop_quietly
from indexer.stores.milvus.schema import DUMMY_DIM

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# A build's claim older than this is a crashed builder's: ignored, then dropped. A replica
# waits this long for another's build too (python -m indexer build --if-stale).
BUILD_CLAIM_SECONDS = 900.0


def _claim_prefix(target: MilvusTarget) -> str:
    return f"{target.collection}_build_claim_"


def build_claims(client: MilvusClient, target: MilvusTarget) -> list[str]:
    prefix = _claim_prefix(target)
    return [n for n in call(client.list_collections) if n.startswith(prefix)]


def _created(client: MilvusClient, name: str) -> int | None:
    """A collection's creation timestamp (a Milvus hybrid timestamp); None if it is gone."""
    try:
        described = call(partial(client.describe_collection, name))
    except StoreUnavailableError:
        return None
    stamp = described.get("created_timestamp")
    return int(stamp) if stamp else None


def _age_seconds(stamp: int, now: int) -> float:
    return ((now >> 18) - (stamp >> 18)) / 1000  # the physical part is in milliseconds


def live_claims(client: MilvusClient, target: MilvusTarget) -> list[tuple[int, str]]:
    """The claims of builds under way, earliest first; stale ones are dropped."""
    if target.is_lite:
        return []
    found = [(_created(client, name), name) for name in build_claims(client, target)]
    stamps = [stamp for stamp, _ in found if stamp is not None]
    if not stamps:
        return []
    # Ages against the newest claim and this machine's clock (as Milvus's hybrid timestamps
    # count: milliseconds since the epoch, shifted 18 bits), so that a crashed builder's claim
    # goes stale with no newer one beside it; the threshold dwarfs any clock skew.
    newest = max(*stamps, int(time.time() * 1000) << 18)
    live = []
    for stamp, name in found:
        if stamp is None:
            continue
        if _age_seconds(stamp, newest) > BUILD_CLAIM_SECONDS:
            drop_quietly(client, name)
        else:
            live.append((stamp, name))
    return sorted(live)


def claim_build(client: MilvusClient, target: MilvusTarget) -> str | None:
    """Claim the building of ``target``; StoreExistsError if another process claimed it
    first. Returns the claim to drop once built (None on Milvus Lite)."""
    if target.is_lite:
        return None
    from pymilvus import DataType

    mine = _claim_prefix(target) + uuid.uuid4().hex[:16]
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("_v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
    call(lambda: client.create_collection(mine, schema=schema))
    live = live_claims(client, target)
    if live and live[0][1] != mine:
        drop_quietly(client, mine)
        raise StoreExistsError(
            f"{target} already holds a build in progress (another process claimed it first)"
        )
    return mine
