"""ColModernVBERT loaded with transformers: multi-vector embeddings for page images and queries.

Pure Python and torch; nothing here imports Django, so the embedder runs as its own process.
"""

import copy
import hashlib
import json
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import snapshot_download
from PIL import Image
from transformers import ColModernVBertForRetrieval, ColModernVBertProcessor

from docdb.embedder.config import EmbedderConfig
from docdb.embedder.testmodel import TINY_MARKER, TINY_MODEL, tiny_model_ensure

log = logging.getLogger("docdb.embedder")

_DEFAULTS = EmbedderConfig()
DEFAULT_MODEL = _DEFAULTS.model
# How page images become model inputs: transformers' PIL or torchvision image processor.
IMAGE_BACKENDS = ("auto", "pil", "torchvision")
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
# torch.compile modes the forward pass may run under on CUDA: `default` fuses kernels,
# `reduce-overhead` also replays CUDA graphs (one per input shape; tile-grouped batches repeat a
# few shapes).
COMPILE_MODES = ("off", "default", "reduce-overhead")
# What queries run through: the page model (`same`), or on a CPU a copy of its text model with
# int8 linear layers (`int8`); `auto` is int8 on a CPU with int8 dot products (VNNI).
QUERY_DTYPES = ("auto", "same", "int8")
# A checkpoint needs configs, tokenizer files and safetensors weights; skipping the rest (README
# images, other weight formats) keeps the download to what from_pretrained reads.
HUB_FILE_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "*.safetensors"]
# The retrieval model the embedder serves, and the LoRA adapter it was merged from: the adapter
# alone is no model (its weights add to a base model's).
MERGED_MODEL = "ModernVBERT/colmodernvbert-merged"
ADAPTER_MODEL = "ModernVBERT/colmodernvbert"
# What config.json of a checkpoint the embedder can serve says it is.
MODEL_TYPE = "colmodernvbert"
ARCHITECTURE = "ColModernVBertForRetrieval"
# How many weight names a loading error lists of each kind.
KEYS_SHOWN = 5
# What to do about a checkpoint the embedder refuses.
_FIX = (
    f"Set DOCDB_EMBEDDER_MODEL={MERGED_MODEL} and DOCDB_EMBEDDER_MODEL_REVISION to a revision "
    "saved by transformers 5 (the model was re-saved for it around 2026-03-31), or "
    "DOCDB_EMBEDDER_MODEL to a directory downloaded from such a revision."
)

Features = Mapping[str, torch.Tensor]

# Page sizes whose image layout is remembered; pages of one collection share a few sizes.
_LAYOUT_CACHE_SIZE = 256


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says why and how to fix it."""


def device_resolve(device: str) -> torch.device:
    """`auto` picks CUDA when torch sees a GPU; `cpu`, `cuda` or `cuda:N` force one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ModelLoadError(f"Unknown device {device!r}: use auto, cpu, cuda or cuda:N.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for but torch {torch.__version__} sees no CUDA GPU. "
            "Set DOCDB_EMBEDDER_DEVICE=cpu (or auto), or install a CUDA build of torch."
        )
    return torch.device(device)


def cpu_features() -> dict[str, Any]:
    """What this CPU computes natively, as torch detects it: bfloat16 arithmetic (AVX512_BF16 or
    AMX tiles), int8 dot products (VNNI), and the widest vector instructions torch uses."""
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bfloat16": torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported(),
        "amx": torch.cpu._is_amx_tile_supported(),
        "vnni": torch.cpu._is_vnni_supported(),
    }


def dtype_resolve(dtype: str, device: torch.device) -> str:
    """The arithmetic the model runs in: float32, bfloat16, float16 or int8.

    `auto` is bfloat16 on a GPU (half the memory, full speed), and on a CPU with native bfloat16
    (AVX512_BF16 or AMX: about half float32's time there); float32 on other CPUs, which emulate
    bfloat16 more slowly than they compute float32. `int8` (a CPU only) is float32 with the linear
    layers quantized to int8.
    """
    if dtype == "auto":
        native = device.type == "cuda" or cpu_features()["bfloat16"]
        return "bfloat16" if native else "float32"
    if dtype not in DTYPES:
        raise ModelLoadError(
            f"Unknown dtype {dtype!r}: use auto, float32, bfloat16, float16 or int8."
        )
    if dtype == "int8" and device.type != "cpu":
        raise ModelLoadError(
            "DOCDB_EMBEDDER_DTYPE=int8 runs on a CPU only (its kernels are the CPU's int8 dot "
            "products); on a GPU use auto (bfloat16)."
        )
    return dtype


def longest_edge_check(longest_edge: int, *, tile_size: int) -> None:
    """A page is resized to `longest_edge` and cut into tiles: a whole number of them."""
    if longest_edge < tile_size or longest_edge % tile_size:
        raise ModelLoadError(
            f"DOCDB_EMBEDDER_LONGEST_EDGE={longest_edge}: use a multiple of the model's tile size "
            f"{tile_size} px (2048, the model's own, or 1024 for ~3x faster pages)."
        )


def linear_layers_quantize(model: Any) -> Any:
    """Dynamic int8 quantization of the linear layers, in place: int8 weights, activations
    quantized per batch, the CPU's int8 kernels (fbgemm/oneDNN) instead of float32 ones. The last
    projection to 128 dimensions (a sliver of the work) stays float32: the model reads its dtype.

    torch's own post-training quantization: it needs no export, no calibration data and no other
    runtime, and takes seconds at start, so there is nothing to cache (docs/benchmarks.md has
    its speed and fidelity against float32).
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    layers = {
        name: default_dynamic_qconfig
        for name, module in model.named_modules()
        # Not subclasses: nn.MultiheadAttention's output layer is one that must stay float.
        if type(module) is torch.nn.Linear and not name.endswith("embedding_proj_layer")
    }
    with warnings.catch_warnings():
        # torch marks its quantized tensors deprecated in favour of torchao, whose int8 CPU
        # kernels need torch.compile; these still work as documented.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor", category=UserWarning)
        return quantize_dynamic(model, layers, dtype=torch.qint8, inplace=True)


def image_backend_resolve(
    backend: str, device: torch.device, *, torchvision_error: str | None
) -> str:
    """`auto` is torchvision on a GPU, which then preprocesses there, and PIL on a CPU (or on a
    GPU without torchvision, with a warning); `pil` or `torchvision` force one.

    On CUDA torchvision resizes with BICUBIC where the model was trained with LANCZOS (PIL's, and
    torchvision's on a CPU). Measured on corpus pages with the full-size architecture
    (bench/resample.py): token vectors agree to a cosine of 0.99998 on average, 0.9995 at the
    lowest token, and the rankings keep their first page; the GPU's preprocessing stays the
    default there.

    `torchvision_error` says why torchvision cannot be imported, None when it can.
    """
    if backend not in IMAGE_BACKENDS:
        raise ModelLoadError(f"Unknown image backend {backend!r}: use auto, pil or torchvision.")
    if backend == "torchvision" and torchvision_error:
        raise ModelLoadError(
            f"DOCDB_EMBEDDER_IMAGE_BACKEND=torchvision, but torchvision cannot be imported "
            f"({torchvision_error}). Install the `gpu` extra with torchvision built for this torch "
            "(from the index torch came from), or set DOCDB_EMBEDDER_IMAGE_BACKEND=auto."
        )
    if backend != "auto":
        return backend
    # On a CPU, PIL needs no torchvision (whose PyPI wheel breaks on CPU-only torch) and makes
    # the vectors existing collections were made with.
    if device.type != "cuda":
        return "pil"
    if torchvision_error:
        log.warning(
            "torchvision cannot be imported (%s): page images will be preprocessed by PIL on CPU "
            "threads, which leaves the GPU waiting most of the time. Install the `gpu` extra "
            "(torchvision built for this torch, from the index torch came from) to preprocess "
            "them on the GPU.",
            torchvision_error,
        )
        return "pil"
    return "torchvision"


def torchvision_import_error() -> str | None:
    """Why torchvision cannot be imported, or None when it can."""
    try:
        import torchvision  # noqa: F401
    except Exception as exc:
        # A wheel built for another torch fails with more than ImportError (a missing operator).
        return _reason(exc)
    return None


def embedder_configured(config: EmbedderConfig) -> "Embedder":
    """The model `config` names, loaded as `embedder_load` does (the service and the check)."""
    embedder = embedder_load(
        config.model,
        revision=config.model_revision,
        device=config.device,
        dtype=config.dtype,
        image_backend=config.image_backend,
        longest_edge=config.longest_edge,
        cache_dir=config.cache_dir,
    )
    forward_compile(embedder, config.compile)
    query_model_quantize(embedder, config.query_dtype)
    return embedder


def query_model_quantize(embedder: "Embedder", query_dtype: str) -> None:
    """With `int8`, queries run through a copy of the text model with int8 linear layers.

    A query is a few dozen tokens: its forward pass reads every weight of the text model for
    little arithmetic on each, so on a CPU its time is mostly memory traffic, which int8 weights
    cut to a quarter, and with VNNI int8 arithmetic is also the CPU's fastest. `auto` is int8 on a
    CPU with VNNI (a query 1.6-2.3x quicker than bfloat16 there, its vectors' cosine with
    float32's 0.99998: docs/benchmarks.md) and `same` elsewhere: on a GPU, and on CPUs without VNNI,
    where the gain is smaller and the int8 copy's memory is better left to pages. The vision model
    is shared, not copied: queries do not use it.
    """
    if query_dtype not in QUERY_DTYPES:
        raise ModelLoadError(
            f"Unknown DOCDB_EMBEDDER_QUERY_DTYPE={query_dtype!r}: use {', '.join(QUERY_DTYPES)}."
        )
    if query_dtype == "auto":
        query_dtype = "int8" if embedder.cpu is not None and embedder.cpu["vnni"] else "same"
    if query_dtype == "same" or embedder.precision == "int8":
        return
    if embedder.device.type != "cpu":
        raise ModelLoadError(
            "DOCDB_EMBEDDER_QUERY_DTYPE=int8 is for a CPU (torch's int8 kernels run there); "
            f"the model runs on {embedder.device}: set it to `same`."
        )
    model = embedder.model
    text_model = linear_layers_quantize(copy.deepcopy(model.vlm.text_model).float())
    # Shallow copies with their own module tables: everything but the text model is shared.
    vlm = copy.copy(model.vlm)
    vlm._modules = {**model.vlm._modules, "text_model": text_model}
    query_model = copy.copy(model)
    query_model._modules = {**model._modules, "vlm": vlm}
    embedder.query_model = query_model.eval()
    embedder.query_precision = "int8"


def forward_compile(embedder: "Embedder", mode: str) -> None:
    """Compile the model's forward pass with torch.compile in `mode` on CUDA; on a CPU leave it
    as it is: compiling there costs minutes at start for a forward pass the matrix products
    dominate."""
    if mode not in COMPILE_MODES:
        raise ModelLoadError(
            f"Unknown DOCDB_EMBEDDER_COMPILE={mode!r}: use {', '.join(COMPILE_MODES)}."
        )
    if mode == "off":
        return
    if embedder.device.type != "cuda":
        log.info(
            "DOCDB_EMBEDDER_COMPILE=%s applies on CUDA only; %s runs uncompiled",
            mode,
            embedder.device,
        )
        return
    # Batches differ in size and tokens: dynamic shapes keep each new one from recompiling.
    embedder.model.forward = torch.compile(embedder.model.forward, mode=mode, dynamic=True)
    embedder.compiled = mode


def embedder_load(
    model: str = DEFAULT_MODEL,
    *,
    revision: str = _DEFAULTS.model_revision,
    device: str = _DEFAULTS.device,
    dtype: str = _DEFAULTS.dtype,
    image_backend: str = _DEFAULTS.image_backend,
    longest_edge: int = _DEFAULTS.longest_edge,
    cache_dir: Path = _DEFAULTS.cache_dir,
) -> "Embedder":
    """Load ColModernVBERT from the hub (at `revision`), a local directory, or `tiny` (built in
    `cache_dir`); refuse anything that is not its retrieval model with every weight in place."""
    torch_device = device_resolve(device)
    precision = dtype_resolve(dtype, torch_device)
    backend = image_backend_resolve(
        image_backend, torch_device, torchvision_error=torchvision_import_error()
    )
    source = model_source(model, cache_dir=cache_dir, revision=revision)
    checkpoint_check(source)
    try:
        embedder = _embedder_from_directory(
            source,
            name=model,
            device=torch_device,
            precision=precision,
            image_backend=backend,
            longest_edge=longest_edge,
            # Also a tiny model built elsewhere (`build-tiny`) and named by its directory.
            random_test_model=(source / TINY_MARKER).exists(),
            revision=revision_describe(model, source, revision),
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        # Whatever from_pretrained trips on (missing file, wrong architecture, bad weights),
        # the service cannot start; say where it looked and what a usable directory holds.
        raise ModelLoadError(
            f"Could not load the model from {source}: {_reason(exc)}. The directory must hold a "
            "ColModernVBERT checkpoint saved with save_pretrained (config.json, safetensors "
            "weights, processor and tokenizer files)."
        ) from exc
    log.info(
        "loaded %s from %s (%s), weights sha256 %s",
        embedder.name,
        source,
        f"revision {embedder.revision}" if embedder.revision else "a local directory",
        embedder.weights_sha256,
    )
    return embedder


def model_source(
    model: str,
    *,
    cache_dir: Path = _DEFAULTS.cache_dir,
    revision: str = _DEFAULTS.model_revision,
) -> Path:
    """The local directory of `model` (a hub id, a directory or `tiny`): downloaded from the hub
    at `revision` or built when needed."""
    if model == TINY_MODEL:
        return tiny_model_ensure(cache_dir)
    if Path(model).expanduser().exists():
        return Path(model).expanduser()
    if model.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"The local model directory {model} does not exist. Set DOCDB_EMBEDDER_MODEL to a "
            f"directory holding the model, to a hub id such as {DEFAULT_MODEL}, or to `tiny` "
            "for the random test model."
        )
    # Hub ids are case-insensitive; refused before a download that could not be served anyway.
    if model.strip("/").casefold() == ADAPTER_MODEL.casefold():
        raise ModelLoadError(_adapter_message(model))
    return _hub_download(model, revision)


def _hub_download(model_id: str, revision: str) -> Path:
    try:
        return Path(
            snapshot_download(model_id, revision=revision, allow_patterns=HUB_FILE_PATTERNS)
        )
    except Exception as exc:
        # One download step up front gives one clear error, instead of from_pretrained
        # retrying every optional file it probes for when the hub is out of reach.
        raise ModelLoadError(
            f"Could not download {model_id} at revision {revision} from the Hugging Face hub: "
            f"{_reason(exc)}. Check the network and DOCDB_EMBEDDER_MODEL_REVISION, or set "
            "DOCDB_EMBEDDER_MODEL to a local directory holding the model, or to `tiny` for the "
            "random test model."
        ) from exc


def checkpoint_check(path: Path) -> None:
    """Refuse a directory that holds a LoRA adapter, or a model other than ColModernVBERT's
    retrieval model, before loading anything from it.

    A directory without config.json is left to from_pretrained, whose error says what is missing.
    """
    if (path / "adapter_config.json").exists():
        raise ModelLoadError(_adapter_message(str(path)))
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not read {path / 'config.json'}: {_reason(exc)}.") from exc
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type == MODEL_TYPE and (not architectures or ARCHITECTURE in architectures):
        return
    raise ModelLoadError(
        f"{path} holds a {model_type or 'model of no model_type'} model "
        f"({', '.join(architectures) or 'no architectures'}), not ColModernVBERT's retrieval "
        f"model (config.json with model_type {MODEL_TYPE!r} and architectures "
        f"[{ARCHITECTURE!r}]). {_FIX}"
    )


def weights_check(info: Mapping[str, Any], *, path: Path) -> None:
    """Refuse a checkpoint whose weight names do not all match the model's.

    from_pretrained loads such a checkpoint without an error and leaves the weights it did not
    find randomly initialised: served like that, every search would be noise.
    """
    missing = sorted(info["missing_keys"])
    unexpected = sorted(info["unexpected_keys"])
    mismatched = sorted(key for key, *_shapes in info["mismatched_keys"])
    if not (missing or unexpected or mismatched):
        return
    problems = [
        f"{len(keys)} {what} ({_keys_listed(keys)})"
        for keys, what in (
            (missing, "missing"),
            (unexpected, "unexpected"),
            (mismatched, "of another shape"),
        )
        if keys
    ]
    raise ModelLoadError(
        f"The weights in {path} do not fit {ARCHITECTURE}: {'; '.join(problems)}. The weights "
        "not found would be left random and every search would be noise, so the embedder does "
        "not start. A directory saved by colpali-engine or by a transformers older than 5 names "
        f"the weights otherwise. {_FIX}"
    )


def _keys_listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:KEYS_SHOWN])
    return shown if len(keys) <= KEYS_SHOWN else f"{shown} and {len(keys) - KEYS_SHOWN} more"


def _adapter_message(model: str) -> str:
    return (
        f"{model} is a LoRA adapter (weights to add to a base model), not a model the embedder "
        f"can serve. Set DOCDB_EMBEDDER_MODEL={MERGED_MODEL}, the adapter merged into "
        f"its base model (Weaviate may keep asking for {ADAPTER_MODEL}: the embedder answers to "
        "that name)."
    )


def weights_sha256(path: Path) -> str:
    """The SHA-256 of the checkpoint's weights: of its one safetensors file (what the hub shows
    for that file), or for several, of the lines `sha256sum *.safetensors` prints."""
    digests = [(file.name, _file_sha256(file)) for file in sorted(path.glob("*.safetensors"))]
    if len(digests) == 1:
        return digests[0][1]
    lines = "".join(f"{digest}  {name}\n" for name, digest in digests)
    return hashlib.sha256(lines.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def revision_describe(model: str, source: Path, revision: str) -> str | None:
    """The hub revision asked for and the commit it resolved to (huggingface_hub keeps each in
    `snapshots/<commit>`); None when `model` is not a hub id."""
    if model == TINY_MODEL or Path(model).expanduser().exists():
        return None
    commit = source.name
    return commit if commit == revision else f"{revision} ({commit})"


def _embedder_from_directory(
    path: Path,
    *,
    name: str,
    device: torch.device,
    precision: str,
    image_backend: str,
    longest_edge: int,
    random_test_model: bool,
    revision: str | None,
) -> "Embedder":
    processor = ColModernVBertProcessor.from_pretrained(path, backend=image_backend)
    image_processor = processor.image_processor
    longest_edge_check(longest_edge, tile_size=image_processor.max_image_size["longest_edge"])
    image_processor.size["longest_edge"] = longest_edge
    # int8 quantizes a float32 model.
    dtype = torch.float32 if precision == "int8" else getattr(torch, precision)
    # Any: transformers types the answer as the model alone (not with the loading info), and
    # `PreTrainedModel.to` in a way mypy cannot call.
    loaded: Any = ColModernVBertForRetrieval.from_pretrained(
        path, dtype=dtype, output_loading_info=True
    )
    model, loading = loaded
    weights_check(loading, path=path)
    model.to(device)
    if precision == "int8":
        model = linear_layers_quantize(model)
    embedder = Embedder(
        model=model,
        processor=processor,
        name=name,
        random_test_model=random_test_model,
        revision=revision,
        weights_sha256=weights_sha256(path),
        precision=precision,
    )
    log.info(
        "page images are preprocessed by the %s image processor on %s",
        embedder.image_backend,
        embedder.image_device,
    )
    return embedder


def _reason(exc: Exception) -> str:
    # Library messages span lines and end in a full stop; ours go on after them.
    return " ".join(str(exc).split()).rstrip(".")


class Embedder:
    """A loaded model. Preparing inputs is thread-safe; run `forward` from one thread at a time.

    A torchvision image processor resizes and normalises page images on the model's device; the
    PIL one on the CPU.
    """

    def __init__(
        self,
        *,
        model: Any,
        processor: Any,
        name: str,
        random_test_model: bool,
        revision: str | None = None,
        weights_sha256: str | None = None,
        precision: str | None = None,
    ) -> None:
        self.model = model.eval()
        # float32, bfloat16, float16, or int8 (float32 with int8 linear layers).
        self.precision: str = precision or str(model.dtype).removeprefix("torch.")
        self.processor = processor
        self.name = name
        self.random_test_model = random_test_model
        # The hub revision and commit the weights came from; None for a local directory.
        self.revision = revision
        self.weights_sha256 = weights_sha256
        self.device: torch.device = model.device
        # What the CPU does natively (its `auto` dtype follows); on a GPU, not asked.
        self.cpu = cpu_features() if self.device.type == "cpu" else None
        self.dim: int = model.config.embedding_dim
        self.image_backend: str = processor.image_processor.backend
        on_device = self.image_backend == "torchvision"
        self.image_device = self.device if on_device else torch.device("cpu")
        # The torch.compile mode the forward pass runs under (forward_compile), else None.
        self.compiled: str | None = None
        # What queries run through: the model, or a copy with an int8 text model
        # (query_model_quantize).
        self.query_model: Any = self.model
        self.query_precision = self.precision
        self._local = threading.local()
        self._layouts: dict[tuple[int, int], dict[str, Any]] = {}
        self._layout_lock = threading.Lock()

    def embed_images(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One (n_tokens, 128) float32 array of unit vectors per image, in one forward pass."""
        return self.forward([self.image_prepare(image) for image in images])

    def embed_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, 128) float32 array of unit vectors per query, in one forward pass."""
        return self.forward([self.query_prepare(text) for text in texts])

    def image_prepare(self, image: Image.Image | torch.Tensor) -> Features:
        """Model inputs for one image (resize, tiles, prompt tokens): any thread.

        `image` is RGB: a PIL image, or with the torchvision backend also a uint8 tensor
        (channels, height, width) as torchvision decodes JPEGs, on the CPU or `image_device`.
        The pixels end up on `image_device`; the token ids, from the tokenizer, on the CPU.
        """
        processor = self._thread_processor()
        if self.image_device.type != "cuda":
            features: Features = _images_process(processor, image)
            return features
        with self._prepare_stream():
            features = _images_process(processor, image, device=self.image_device)
            # What the model would convert them to anyway, made here: a queued page then holds
            # half the GPU memory, and a bool mask an eighth of the int64 one.
            return {
                **features,
                "pixel_values": features["pixel_values"].to(self.model.dtype),
                "pixel_attention_mask": features["pixel_attention_mask"].bool(),
            }

    def query_prepare(self, text: str) -> Features:
        """Model inputs for one query (prefix, tokens, augmentation suffix)."""
        features: Features = self._thread_processor().process_queries([text])
        return features

    def forward(self, items: Sequence[Features]) -> list[np.ndarray]:
        """Run prepared inputs of one kind through the model together; padding is dropped.

        Through int8 layers each input goes alone: they quantize their activations with one scale
        for the whole batch, so an input's vectors would depend on its batch-mates and padding
        (another person's query). On a CPU batching saves little, and alone they are the same
        whatever else is asked at the time.
        """
        pages = "pixel_values" in items[0]
        if len(items) > 1 and (self.precision if pages else self.query_precision) == "int8":
            return [vectors for item in items for vectors in self.forward([item])]
        batch = features_collate(
            items,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            padding_side=self.processor.tokenizer.padding_side,
        )
        model = self.model if pages else self.query_model
        with torch.inference_mode():
            output = model(**{key: value.to(self.device) for key, value in batch.items()})
            # Copying to the host waits for the model's stream: inputs prepared on the GPU on
            # other streams are freed (and their memory reused) only after it read them.
            embeddings = output.embeddings.float().cpu()
        keep = batch["attention_mask"].bool()
        return [_unit_rows(embeddings[row][keep[row]].numpy()) for row in range(len(items))]

    def memory_peak_gib(self) -> float | None:
        """The most GPU memory this process has held for tensors since start; None on a CPU."""
        if self.device.type != "cuda":
            return None
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "device": str(self.device),
            "dtype": self.precision,
            "query_dtype": self.query_precision,
            "cpu": self.cpu,
            "dim": self.dim,
            "image_backend": self.image_backend,
            "image_device": str(self.image_device),
            "compiled": self.compiled,
            "random_test_model": self.random_test_model,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "geometry": self.geometry(),
        }

    def geometry(self) -> dict[str, Any]:
        """How a page becomes tokens: needed to map image tokens back onto the page."""
        image_processor = self.processor.image_processor
        vlm = self.model.config.vlm_config
        patch_size = vlm.vision_config.patch_size
        tile_size = image_processor.max_image_size["longest_edge"]
        return {
            "longest_edge": image_processor.size["longest_edge"],
            "tile_size": tile_size,
            "image_splitting": image_processor.do_image_splitting,
            "patch_size": patch_size,
            "pixel_shuffle_factor": vlm.pixel_shuffle_factor,
            "tile_grid": tile_size // patch_size // vlm.pixel_shuffle_factor,
            "tokens_per_tile": self.processor.image_seq_len,
        }

    def image_layout(self, width: int, height: int) -> dict[str, Any]:
        """Which positions of a width x height page's multi-vector are image tokens, tile by tile.

        The processor is run on a blank page of that size, so the answer follows its own resize,
        tiling and prompt (whatever the checkpoint's prompt is) rather than a copy of their rules.
        Cached per size: pages of one document mostly share theirs.
        """
        key = (width, height)
        with self._layout_lock:
            cached = self._layouts.get(key)
        if cached is not None:
            return cached
        blank = Image.new("RGB", (width, height), "white")
        input_ids = self._thread_processor().process_images([blank])["input_ids"][0].tolist()
        processor = self.processor
        layout = image_token_layout(
            input_ids,
            image_token_id=processor.image_token_id,
            global_token_id=processor.global_image_token_id,
            row_col_ids=processor.row_col_ids,
            tokens_per_tile=processor.image_seq_len,
        )
        layout["tile_grid"] = self.geometry()["tile_grid"]
        with self._layout_lock:
            if len(self._layouts) >= _LAYOUT_CACHE_SIZE:
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    def query_tokens(self, text: str) -> tuple[Features, list[dict[str, Any]]]:
        """A query's model inputs and, per position of its multi-vector, the token it stands for.

        `special` marks what the person did not type (separators, the augmentation tokens the
        processor appends), which a similarity map has no use for.
        """
        features = self.query_prepare(text)
        tokenizer = self.processor.tokenizer
        special = set(tokenizer.all_special_ids)
        ids = [
            token_id
            for token_id, keep in zip(
                features["input_ids"][0].tolist(),
                features["attention_mask"][0].tolist(),
                strict=True,
            )
            if keep
        ]
        tokens = [
            {"text": tokenizer.decode([token_id]), "special": token_id in special}
            for token_id in ids
        ]
        return features, tokens

    @contextmanager
    def _prepare_stream(self) -> Iterator[None]:
        """Run this thread's GPU work on its own CUDA stream, and wait for it before leaving.

        On the default stream it would queue behind the model's forward pass and hold up the
        next one; waiting here means what `forward` receives from any thread is complete.
        """
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.image_device)
        try:
            with torch.cuda.stream(stream):
                yield
        finally:
            stream.synchronize()

    def _thread_processor(self) -> Any:
        # A fast tokenizer mutates its padding state on each call and fails with "Already
        # borrowed" when two threads share it, so each preparing thread gets its own copy.
        processor = getattr(self._local, "processor", None)
        if processor is None:
            processor = self._local.processor = copy.deepcopy(self.processor)
        return processor


def _images_process(processor: Any, image: Image.Image | torch.Tensor, **kwargs: Any) -> Any:
    """The processor's inputs for one image. Its `process_images` converts PIL images to RGB and
    refuses tensors; a decoded tensor is RGB already and goes straight to the processor, with
    the same prompt."""
    if isinstance(image, Image.Image):
        return processor.process_images([image], **kwargs)
    return processor(
        text=[processor.visual_prompt_prefix], images=[image], return_tensors="pt", **kwargs
    )


def image_token_layout(
    input_ids: Sequence[int],
    *,
    image_token_id: int,
    global_token_id: int,
    row_col_ids: Sequence[int],
    tokens_per_tile: int,
) -> dict[str, Any]:
    """Find each tile's run of image tokens in a page's token ids.

    The Idefics3 prompt puts `<row_R_col_C>` (or `<global-img>` for the whole page shrunk to one
    tile) right before each run of `tokens_per_tile` image tokens; within a run the tokens are the
    tile's patch grid, row by row, after the pixel shuffle.
    """
    # row_col_ids lists <row_1_col_1> ... <row_6_col_6> in that order.
    side = round(len(row_col_ids) ** 0.5)
    tile_of = {token_id: divmod(index, side) for index, token_id in enumerate(row_col_ids)}
    tiles: list[dict[str, Any]] = []
    position = 0
    while position < len(input_ids):
        if input_ids[position] != image_token_id:
            position += 1
            continue
        end = position
        while end < len(input_ids) and input_ids[end] == image_token_id:
            end += 1
        if end - position != tokens_per_tile:
            raise ValueError(f"a run of {end - position} image tokens, not {tokens_per_tile}")
        marker = input_ids[position - 1] if position else None
        if marker == global_token_id:
            tiles.append({"start": position, "row": None, "col": None})
        elif marker in tile_of:
            row, col = tile_of[marker]
            tiles.append({"start": position, "row": row, "col": col})
        else:
            raise ValueError(f"image tokens at {position} follow no tile marker")
        position = end
    local = [tile for tile in tiles if tile["row"] is not None]
    if len(tiles) - len(local) != 1:
        raise ValueError("a page must have exactly one global tile")
    return {
        "length": len(input_ids),
        "rows": 1 + max((tile["row"] for tile in local), default=-1),
        "cols": 1 + max((tile["col"] for tile in local), default=-1),
        "tokens_per_tile": tokens_per_tile,
        "tiles": tiles,
    }


def features_collate(
    items: Sequence[Features], *, pad_token_id: int, padding_side: str
) -> Features:
    """Pad inputs prepared one by one into a batch, the way the processor pads its own batches."""
    length = max(item["input_ids"].shape[1] for item in items)
    batch: dict[str, torch.Tensor] = {
        "input_ids": torch.stack(
            [
                _pad_tokens(item["input_ids"][0], length, pad_token_id, padding_side)
                for item in items
            ]
        ),
        "attention_mask": torch.stack(
            [_pad_tokens(item["attention_mask"][0], length, 0, padding_side) for item in items]
        ),
    }
    if "pixel_values" in items[0]:
        batch["pixel_values"] = _pad_tiles([item["pixel_values"][0] for item in items])
        # As bool, an eighth of the processor's int64 mask: ~1 GB less per 32 pages to copy.
        batch["pixel_attention_mask"] = _pad_tiles(
            [item["pixel_attention_mask"][0].bool() for item in items]
        )
    return batch


def _pad_tokens(tokens: torch.Tensor, length: int, value: int, side: str) -> torch.Tensor:
    padding = tokens.new_full((length - tokens.shape[0],), value)
    return torch.cat([padding, tokens] if side == "left" else [tokens, padding])


def _pad_tiles(tiles: Sequence[torch.Tensor]) -> torch.Tensor:
    # All-zero tiles are what the model recognises as padding and skips.
    shape = [max(sizes) for sizes in zip(*(t.shape for t in tiles), strict=True)]
    batch = tiles[0].new_zeros((len(tiles), *shape))
    for row, tile in enumerate(tiles):
        batch[row][tuple(slice(0, size) for size in tile.shape)] = tile
    return batch


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    # The model normalises in its own dtype; in bfloat16 the norms are off by up to ~1e-2.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
