"""The core must stay usable without the web stack or the model weights. (Which package may
import which is checked by the import contracts in pyproject.toml, ``make lint``.)"""

from __future__ import annotations

import subprocess
import sys


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
