"""The core must stay usable without the web stack or the model weights."""

from __future__ import annotations

import subprocess
import sys


def test_indexer_imports_without_fastapi_or_torch() -> None:
    code = (
        "import sys, indexer, indexer.cli, indexer.index, indexer.search, indexer.faiss_store;"
        "heavy = ('fastapi', 'starlette', 'torch', 'sentence_transformers');"
        "heavy = sorted(m for m in heavy if m in sys.modules);"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_app_module_import_does_no_heavy_work() -> None:
    code = (
        "import sys, app.main;print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
