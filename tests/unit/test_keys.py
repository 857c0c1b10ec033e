"""The key ring: who a key is, compared in constant time; what a scoped caller may write."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from app import keys as keys_module
from app.keys import Caller, KeyRing, ScopeError
from indexer.filters import parse_filter
from indexer.types import Document
from tests.utils.tenants import KEYS, TENANT_A, write_keys_file

pytestmark = pytest.mark.unit


def test_every_known_digest_is_compared_whichever_key_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = KeyRing(SecretStr("admin"), None, write_keys_file(tmp_path / "keys.json"))
    compared: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return compare(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    for key in (KEYS[0].secret, KEYS[-1].secret, "admin", "unknown"):
        compared.clear()
        ring.caller(key)
        # No early exit at a match: the time does not say which entry matched, or whether one.
        assert len(compared) == len(KEYS) + 1
        assert len(set(compared)) == len(KEYS) + 1


def test_who_each_key_is(tmp_path: Path) -> None:
    ring = KeyRing(SecretStr("admin"), SecretStr("reader"), write_keys_file(tmp_path / "k.json"))
    assert ring.caller("admin") == Caller("SEARCH_API_KEY", "admin")
    assert ring.caller("reader") == Caller("read key", "read")
    assert ring.caller(TENANT_A.secret) == Caller(
        "tenant-a", "write", parse_filter({"tenant": "a"})
    )
    assert ring.caller("admin ") is None
    assert not ring.reads_open
    assert ring.writes_enabled


def test_reads_open_and_writes_off_without_keys() -> None:
    ring = KeyRing()
    assert ring.reads_open
    assert not ring.writes_enabled
    assert KeyRing(SecretStr("admin")).reads_open  # as before: a write key alone leaves reads open


def test_the_file_is_read_again_when_replaced(tmp_path: Path) -> None:
    path = write_keys_file(tmp_path / "keys.json", (TENANT_A,))
    ring = KeyRing(keys_file=path)
    assert ring.caller(TENANT_A.secret) is not None
    path.write_text(json.dumps({"keys": []}))
    assert ring.caller(TENANT_A.secret) is None
    assert not ring.writes_enabled


SCOPED = Caller("t", "write", parse_filter({"tenant": "a", "year": {"gte": 2000}}))


def test_a_scoped_write_gets_the_scopes_single_values() -> None:
    stamped = SCOPED.stamp(Document("x", "T", "text", {"year": 2001}))
    assert stamped.metadata == {"year": 2001, "tenant": "a"}
    assert SCOPED.sees(stamped)


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"tenant": "b", "year": 2001}, 'its \'tenant\' must match {"eq": "a"}, not "b"'),
        ({"year": 1999}, "its 'year' must match {\"gte\": 2000}, not 1999"),
        ({}, "its 'year' must match {\"gte\": 2000}, not null"),
    ],
)
def test_a_write_outside_the_scope_is_refused(metadata: dict[str, object], problem: str) -> None:
    with pytest.raises(ScopeError, match="outside this key's scope") as raised:
        SCOPED.stamp(Document("x", "T", "text", metadata))  # type: ignore[arg-type]
    assert problem in str(raised.value)


def test_roles_include_the_ones_below() -> None:
    assert Caller("r", "read").may("read")
    assert not Caller("r", "read").may("write")
    assert Caller("w", "write").may("write")
    assert not Caller("w", "write").may("admin")
    assert Caller("a", "admin").may("write")
