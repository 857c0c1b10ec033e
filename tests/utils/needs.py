"""What a test needs that a machine may lack: ``../shared`` beside the checkout, tools, root.

Where it is missing the test skips, except in CI (``CI=true``), where everything must be there:
then it fails, so that a missing piece is never mistaken for a pass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.utils.paths import REPO

SHARED = REPO.parent / "shared"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def shared(relative: str) -> Path:
    """``../shared/<relative>``, which the project's CI has beside the checkout."""
    path = SHARED / relative
    if not path.exists():
        unavailable(f"../shared/{relative} is not beside this checkout")
    return path
