"""Claims: build claims and numbering slots.

Replicas started together may all find a store missing and build it. Creating a collection is
no lock (a 2.3 server accepts a second create with the same schema), so each builder creates a
claim collection of its own and the earliest created (the server's timestamps are totally
ordered) builds; the others wait for its manifest. A Milvus Lite file is held by one process,
so it needs no claim. A reindex claims its new version the same way.

Each writing replica of a server's store claims a numbering slot the same way (see
``numbering``): the earliest live claim of a slot holds it. A claim lives while its replica
beats (``numbering.ReplicaRow.at``) or for ``SLOT_CLAIM_SECONDS`` after it was created; a
crashed replica's claim is dropped by the next replica that looks for a slot after that.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
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
# A numbering slot's claim with no heartbeat for this long is a dead replica's (its owner beats
# every numbering.HEARTBEAT_SECONDS, and checks its claim before writing once half this passed).
SLOT_CLAIM_SECONDS = 60.0


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


def _slot_prefix(target: MilvusTarget) -> str:
    return f"{target.collection}_slot_claim_"


def slot_claims(client: MilvusClient, target: MilvusTarget) -> list[str]:
    prefix = _slot_prefix(target)
    return [n for n in call(client.list_collections) if n.startswith(prefix)]


def _slot_of(target: MilvusTarget, name: str) -> int:
    return int(name[len(_slot_prefix(target)) :].split("_")[0])


def _live_slot_claims(
    client: MilvusClient, target: MilvusTarget, beats: Mapping[str, float]
) -> dict[int, list[tuple[int, str]]]:
    """The live claims by slot, earliest first; stale ones are dropped. ``beats``: each
    claim's last heartbeat (wall-clock seconds), as the replica rows have it."""
    now = time.time()
    clock = int(now * 1000) << 18
    live: dict[int, list[tuple[int, str]]] = {}
    for name in slot_claims(client, target):
        stamp = _created(client, name)
        if stamp is None:
            continue
        young = _age_seconds(stamp, max(stamp, clock)) <= SLOT_CLAIM_SECONDS
        if young or now - beats.get(name, 0.0) <= SLOT_CLAIM_SECONDS:
            live.setdefault(_slot_of(target, name), []).append((stamp, name))
        else:
            drop_quietly(client, name)
    return {slot: sorted(claims) for slot, claims in live.items()}


def claim_slot(
    client: MilvusClient, target: MilvusTarget, slots: int, beats: Mapping[str, float]
) -> tuple[int, str]:
    """Claim the lowest free numbering slot of ``target`` (below ``slots``): the slot, and the
    claim to beat for and to drop at close. Claimed first, checked after, as a build: of two
    replicas claiming one slot at once the later created sees the earlier claim and tries the
    next slot."""
    from pymilvus import DataType

    for _ in range(slots):
        taken = _live_slot_claims(client, target, beats)
        free = next((s for s in range(slots) if s not in taken), None)
        if free is None:
            break
        mine = f"{_slot_prefix(target)}{free}_{uuid.uuid4().hex[:16]}"
        schema = client.create_schema(auto_id=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("_v", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
        call(lambda: client.create_collection(mine, schema=schema))  # noqa: B023
        claims = _live_slot_claims(client, target, beats).get(free, [])
        if claims and claims[0][1] == mine:
            return free, mine
        drop_quietly(client, mine)
    raise StoreUnavailableError(
        f"{target} has no free numbering slot: {slots} replicas write to it already"
    )


def holds_slot(client: MilvusClient, name: str) -> bool:
    """Is the claim ``name`` still there (not dropped as stale by another replica)?"""
    return bool(call(partial(client.has_collection, name)))
