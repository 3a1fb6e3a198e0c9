"""The full-size ColModernVBERT architecture with random weights, built offline.

Weights do not change speed, so a randomly initialised model of the real shape measures what the
real checkpoint costs. It is built like the tiny test model (docdb.embedder.testmodel), with the
dims of the real one (the config.json of ModernVBERT/colmodernvbert-merged on the Hugging Face
hub): ModernBERT-base text model, SigLIP base vision tower on 512-px tiles, patch 16, pixel
shuffle 4, pages up to 2048 px. Its processor is the test model's, which has the real geometry
and prompt.
"""

from pathlib import Path

import torch
from transformers import (
    ColModernVBertConfig,
    ColModernVBertForRetrieval,
    ModernBertConfig,
    ModernVBertConfig,
    SiglipVisionConfig,
)

from docdb.embedder.testmodel import (
    EMBEDDING_DIM,
    PATCH_SIZE,
    PIXEL_SHUFFLE,
    TILE_SIZE,
    TINY_MARKER,
    tiny_processor,
)

# ModernBERT's 50 368 tokens plus the 40 the checkpoint adds; our tokenizer uses a few hundred
# of them, but the embedding table has the real size.
VOCAB_SIZE = 50_368 + 40


def fullsize_model_build(path: Path, *, device: str = "cpu") -> Path:
    """Save a random full-size model to `path`, loadable by `embedder_load(str(path))`.

    On a GPU (`device="cuda"`) the random initialisation takes a second instead of a minute.
    """
    processor = tiny_processor()
    tokenizer = processor.tokenizer
    text = ModernBertConfig(
        vocab_size=VOCAB_SIZE,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )  # the defaults are ModernBERT-base: 768 hidden, 22 layers, 12 heads
    vision = SiglipVisionConfig(image_size=TILE_SIZE, patch_size=PATCH_SIZE)  # base: 768, 12
    config = ColModernVBertConfig(
        vlm_config=ModernVBertConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
            pixel_shuffle_factor=PIXEL_SHUFFLE,
        ),
        embedding_dim=EMBEDDING_DIM,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = ColModernVBertForRetrieval(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    # Marked as a random test model, so the embedder reports it as one.
    (path / TINY_MARKER).write_text('{"recipe_version": "fullsize"}')
    return path


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
