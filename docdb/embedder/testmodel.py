"""The random test model: ColModernVBERT's classes at a tiny size, built offline in a fraction
of a second and saved like a real checkpoint, so the embedder loads it with the same code.

Its vectors are noise; tests, benchmarks and machines without the hub use it.
"""

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    ColModernVBertConfig,
    ColModernVBertForRetrieval,
    ColModernVBertProcessor,
    Idefics3ImageProcessorPil,
    ModernBertConfig,
    ModernVBertConfig,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

# What DOCDB_EMBEDDER_MODEL names it by.
TINY_MODEL = "tiny"
# ColModernVBERT's: the test models make vectors of the real shape.
EMBEDDING_DIM = 128

# Bump when the tiny recipe changes, so a cached build from an older recipe is not reused.
TINY_RECIPE_VERSION = 1
TINY_MARKER = "docdb_tiny_recipe.json"

# Tokens the Idefics3-style prompt of ColModernVBertProcessor is made of. They must be whole
# vocabulary entries: otherwise the processor adds them and the ids outgrow the embedding table.
TINY_SPECIAL_TOKENS = [
    "<pad>",
    "<unk>",
    "<|begin_of_text|>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    "<end_of_utterance>",
    *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)),
]
TINY_CORPUS = [
    "User: Describe the image. Assistant:",
    "What is the total amount on the invoice?",
    "Quarterly revenue grew in every region except the north.",
    "Figure 3 shows the attention map of the retrieval model.",
]
# Tiles of 256 px split into 16-px patches, pixel-shuffled by 2: an 8 x 8 grid of 64 tokens per
# tile, the same grid and token count as the real model's 512-px tiles at patch 16, shuffle 4.
TINY_LONGEST_EDGE = 512
TINY_TILE_SIZE = 256
TINY_PATCH_SIZE = 16
TINY_PIXEL_SHUFFLE = 2


def tiny_model_build(path: Path) -> Path:
    """Build the random test model in `path`: offline, deterministic, a fraction of a second."""
    processor = ColModernVBertProcessor(
        image_processor=_tiny_image_processor(),
        tokenizer=tiny_tokenizer(),
        image_seq_len=(TINY_TILE_SIZE // TINY_PATCH_SIZE // TINY_PIXEL_SHUFFLE) ** 2,
    )
    torch.manual_seed(0)
    model = ColModernVBertForRetrieval(_tiny_config(processor.tokenizer))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / TINY_MARKER).write_text(json.dumps({"recipe_version": TINY_RECIPE_VERSION}))
    return path


def tiny_model_ensure(cache_dir: Path) -> Path:
    """Return the cached tiny model directory, building it first if missing or outdated."""
    path = cache_dir / f"tiny-colmodernvbert-v{TINY_RECIPE_VERSION}"
    if _tiny_is_built(path):
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build aside and rename, so a concurrent process never loads a half-written directory.
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=cache_dir))
    try:
        tiny_model_build(staging)
        if path.exists() and not _tiny_is_built(path):
            shutil.rmtree(path)  # a directory without our marker is no build of ours
        staging.rename(path)
    except OSError:
        if not _tiny_is_built(path):  # else another process finished the same build first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _tiny_is_built(path: Path) -> bool:
    try:
        marker = json.loads((path / TINY_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("recipe_version") == TINY_RECIPE_VERSION


def tiny_tokenizer() -> Any:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TINY_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",  # noqa: S106 (a vocabulary token, not a password)
        unk_token="<unk>",  # noqa: S106
    )


def _tiny_image_processor() -> Any:
    return Idefics3ImageProcessorPil(
        size={"longest_edge": TINY_LONGEST_EDGE},
        max_image_size={"longest_edge": TINY_TILE_SIZE},
        do_image_splitting=True,
    )


def _tiny_config(tokenizer: Any) -> Any:
    text = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        # ModernBERT's defaults point at ids of its 50k vocabulary; this one has a few hundred.
        bos_token_id=None,
        eos_token_id=None,
        cls_token_id=None,
        sep_token_id=None,
    )
    vision = SiglipVisionConfig(
        image_size=TINY_TILE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    vlm = ModernVBertConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pixel_shuffle_factor=TINY_PIXEL_SHUFFLE,
    )
    return ColModernVBertConfig(vlm_config=vlm, embedding_dim=EMBEDDING_DIM)
