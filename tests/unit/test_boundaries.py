"""The core must stay usable without the web stack or the model weights."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO


def test_indexer_imports_without_fastapi_or_torch() -> None:
    code = (
        "import sys, indexer, indexer.cli, indexer.build, indexer.search, indexer.stores;"
        "heavy = ('fastapi', 'starlette', 'torch', 'sentence_transformers');"
        "heavy = sorted(m for m in heavy if m in sys.modules);"
        "print(','.join(heavy))"
    )
    assert _printed_by_fresh_python(code) == ""


def test_app_module_import_does_no_heavy_work() -> None:
    code = (
        "import sys, app.main;print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    assert _printed_by_fresh_python(code) == "False False"


def test_the_core_imports_nothing_from_the_service_or_the_benchmarks() -> None:
    for path in sorted((REPO / "indexer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"app", "bench", "fastapi"}, f"{path}: {name}"


def test_serving_and_the_indexer_cli_import_without_the_eval_extra() -> None:
    """pytrec-eval-terrier (and its scipy) is the eval extra, which the image leaves out."""
    code = (
        "import sys; sys.modules['pytrec_eval'] = None;"
        "import app.main, app.__main__, indexer.cli, indexer.evaluation;"
        "print('scipy' in sys.modules)"
    )
    assert _printed_by_fresh_python(code) == "False"


def _printed_by_fresh_python(code: str) -> str:
    """What ``code`` prints in a new interpreter: imports are measured from nothing loaded."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()
