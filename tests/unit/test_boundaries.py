"""The core must stay usable without the web stack or the model weights. (Which package may
import which is checked by the import contracts in pyproject.toml, ``make lint``.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.utils.paths import REPO


def test_indexer_imports_without_fastapi_or_torch() -> None:
    code = (
        "import sys, indexer, indexer.cli, indexer.build, indexer.search, indexer.stores;"
        "heavy = ('fastapi', 'starlette', 'torch', 'sentence_transformers', 'ray');"
        "heavy = sorted(m for m in heavy if m in sys.modules);"
        "print(','.join(heavy))"
    )
    assert _printed_by_fresh_python(code) == ""


def test_app_module_import_does_no_heavy_work() -> None:
    code = (
        "import sys, app.main;"
        "print(*(m in sys.modules for m in ('torch', 'sentence_transformers', 'ray')))"
    )
    assert _printed_by_fresh_python(code) == "False False False"


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


def test_every_core_module_is_bound_by_the_one_registry_contract() -> None:
    """The contract lists its source modules one by one (import-linter cannot exclude a
    subpackage from a package's descendants): a new module of the core must join it."""
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (registry,) = [c for c in contracts["contracts"] if c["id"] == "one-registry"]
    core = {
        f"indexer.{path.stem}"
        for path in (REPO / "indexer").glob("*.py")
        if path.stem not in ("__init__", "__main__")
    }
    assert core <= set(registry["source_modules"]), sorted(core - set(registry["source_modules"]))


def test_the_store_contracts_cover_every_registered_kind() -> None:
    """A kind added to the registry joins the contracts that keep it apart."""
    from indexer.stores import KINDS

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    by_id = {c["id"]: c for c in contracts["contracts"]}
    packages = {f"indexer.stores.{name}" for name in KINDS}
    assert set(by_id["one-registry"]["forbidden_modules"]) == packages
    assert set(by_id["kinds-independent"]["modules"]) == packages
