"""Keys scoped to tenants, as SEARCH_API_KEYS_FILE holds them (digests only, never the keys)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, eq=False)  # hashed by identity: a test maps keys to documents
class Key:
    name: str
    secret: str
    role: str
    filter: dict[str, object] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def entry(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "sha256": hashlib.sha256(self.secret.encode()).hexdigest(),
            "role": self.role,
        }
        if self.filter is not None:
            entry["filter"] = self.filter
        return entry


TENANT_A = Key("tenant-a", "key-of-tenant-a", "write", {"tenant": "a"})
TENANT_B = Key("tenant-b", "key-of-tenant-b", "write", {"tenant": "b"})
READER_A = Key("tenant-a-reader", "read-key-of-tenant-a", "read", {"tenant": "a"})
EVERYONE = Key("analytics", "read-key-of-everything", "read")
KEYS = (TENANT_A, TENANT_B, READER_A, EVERYONE)


def write_keys_file(path: Path, keys: tuple[Key, ...] = KEYS) -> Path:
    """Write the file as an operator would replace it: whole, then renamed into place."""
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps({"keys": [key.entry() for key in keys]}))
    os.replace(staged, path)
    return path
