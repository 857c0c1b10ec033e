"""The embedding model run by ONNX Runtime instead of torch: same vectors, a fraction of the time.

``export_onnx`` converts a mean-pooling sentence-transformers model (like all-MiniLM-L6-v2)
once, ahead of serving; ``OnnxEmbedder`` then tokenises, runs the transformer, mean-pools and
normalises exactly as sentence-transformers does, and is checked against it in the tests.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embedding import (
    DEFAULT_BATCH_SIZE,
    HuggingFaceTokenizer,
    ModelLoadError,
    SentenceTransformerEmbedder,
    Vectors,
    resolve_model_path,
)
from indexer.progress import progress as progress_bar

EXPORT_FILE = "export.json"
VARIANTS = {"fp32": "model.onnx", "int8": "model-int8.onnx"}


def export_onnx(model_name: str, out: Path) -> Path:
    """Write ``model.onnx``, its int8 twin, the tokenizer and ``export.json`` into ``out``."""
    embedder = SentenceTransformerEmbedder(model_name)  # says what to install if torch is missing
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    model = embedder._model
    modules = [type(m).__name__ for m in model]
    pooling = getattr(model[1], "pooling_mode", None) if len(model) > 1 else None
    if modules[:2] != ["Transformer", "Pooling"] or pooling != "mean":
        raise ModelLoadError(f"only mean-pooling models can be exported; {model_name} is {modules}")

    # torch is Any to mypy (not followed: pyproject.toml), so this subclasses Any.
    class LastHiddenState(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    out.mkdir(parents=True, exist_ok=True)
    # export.json is written last and marks a complete export: until then, none is there.
    (out / EXPORT_FILE).unlink(missing_ok=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    # Trace with a padded batch: the attention code branches on whether any token is masked,
    # and tracing keeps only the branch it saw; the masked branch is right for every batch.
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    transformer: Any = model[0].auto_model  # a transformers PreTrainedModel
    # Eager attention traces to the MatMul/Softmax pattern that ONNX Runtime's optimizer fuses
    # into its Attention kernel (the SDPA trace is left unfused): ~10 % faster, same vectors.
    transformer.set_attn_implementation("eager")
    wrapper = LastHiddenState(transformer).eval()
    traced = out / "traced.onnx"
    # The exporter warns about the legacy path, data-dependent branches (handled by the padded
    # sample above) and indexing; the vectors are checked against torch's in the tests.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask, torch.zeros_like(ids)),
            str(traced),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter handles this model with no extra packages
        )
    config = transformer.config
    fused = optimizer.optimize_model(
        str(traced),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    )
    fused.save_model_to_file(str(out / VARIANTS["fp32"]))
    # Quantised from the plain trace: the quantiser cannot type the fused graph's contrib ops.
    with _quiet_root_logger():
        quantize_dynamic(str(traced), str(out / VARIANTS["int8"]), weight_type=QuantType.QInt8)
    traced.unlink()
    shutil.copy(Path(resolve_model_path(model_name)) / "tokenizer.json", out / "tokenizer.json")
    manifest = {
        "model": model_name,
        "dimension": embedder.dimension,
        "max_seq_length": int(model.max_seq_length or 512),
        "pooling": "mean",
        "normalize": True,
    }
    (out / EXPORT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantiser logs advice through ``logging.warning()``, which would also install a
    console handler on the root logger for good (and let other libraries' debug logs through)."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()  # with a handler present, logging skips basicConfig()
    level = root.level
    root.addHandler(placeholder)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(placeholder)
        root.setLevel(level)


def export_problem(model_name: str, directory: Path, variant: str = "fp32") -> str | None:
    """Why ``directory`` cannot serve ``model_name`` (``variant``), or None when it can.

    Cheap (reads one small JSON file), so the service can check before loading anything.
    """
    if not (directory / EXPORT_FILE).is_file():
        return f"no ONNX export of {model_name!r} in {directory}"
    try:
        exported = json.loads((directory / EXPORT_FILE).read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"the ONNX export in {directory} is unreadable ({error})"
    if exported != model_name:
        return f"{directory} holds an ONNX export of {exported!r}, not of {model_name!r}"
    for needed in (VARIANTS[variant], "tokenizer.json"):
        if not (directory / needed).is_file():
            return f"the ONNX export in {directory} lacks {needed}"
    return None


def ensure_export(
    model_name: str, directory: Path, announce: Callable[[str], object] = print
) -> None:
    """Export ``model_name`` into ``directory`` unless a usable export is already there."""
    problem = export_problem(model_name, directory)
    if problem is not None:
        announce(f"exporting the model for ONNX Runtime (once): {problem}")
        export_onnx(model_name, directory)
        announce(f"exported {model_name} to {directory}")


class OnnxEmbedder:
    def __init__(
        self, model_name: str, directory: Path, variant: str = "fp32", threads: int | None = None
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        problem = export_problem(model_name, directory, variant)
        if problem is not None:
            raise ModelLoadError(
                f"{problem}; make one with: python -m indexer export-onnx --out {directory}"
            )
        try:
            export = json.loads((directory / EXPORT_FILE).read_text(encoding="utf-8"))
            options = onnxruntime.SessionOptions()
            # Idle ORT threads spin-wait by default, burning the CPU that the event loop and
            # the request threads need between model calls (measured: @16 71 -> 76 req/s).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if threads is not None:  # one of several processes sharing the machine's cores
                options.intra_op_num_threads = threads
            session = onnxruntime.InferenceSession(
                str(directory / VARIANTS[variant]), options, providers=["CPUExecutionProvider"]
            )
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise ModelLoadError(
                f"no usable ONNX export of {model_name!r} ({variant}) in {directory}: {error}; "
                f"make one with: python -m indexer export-onnx --out {directory}"
            ) from error
        self.model_name = model_name
        self.dimension = int(export["dimension"])
        self.variant = variant
        self._session = session
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(export["max_seq_length"]))
        self._tokenizer.enable_padding()
        self._directory = directory

    def encode(
        self, texts: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False
    ) -> Vectors:
        # Like sentence-transformers: batch texts of similar length, so little is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        starts = range(0, len(order), batch_size)
        for start in progress_bar(starts, desc="Batches", unit="batch", enabled=progress):
            chosen = order[start : start + batch_size]
            vectors[chosen] = self._encode([texts[i] for i in chosen])
        return vectors

    def _encode(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self._session.run(None, inputs)[0]
        # Mean over real tokens, then unit length: sentence-transformers' Pooling + Normalize.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.ascontiguousarray(pooled / norms, dtype=np.float32)

    def tokenizer(self) -> HuggingFaceTokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self._directory / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return HuggingFaceTokenizer(tokenizer)
