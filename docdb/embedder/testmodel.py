"""The random test model: ColModernVBERT's classes with the real model's page geometry and
prompt, and everything else tiny, built offline in about a second and saved like a real
checkpoint, so the embedder loads it with the same code.

What decides how a page becomes vectors is the real checkpoint's (ModernVBERT/
colmodernvbert-merged): the Idefics3 image processor with splitting on, longest edge 2048,
512-px tiles, LANCZOS, mean and std 0.5; a vision tower on 512-px tiles of 16-px patches,
pixel-shuffled by 4 into 64 tokens a tile; a ModernBERT-like tokenizer (byte-level BPE that
wraps every text in [CLS] ... [SEP] and reads `<|begin_of_text|>` as ordinary pieces) with the
Idefics3 tokens added, and the processor's own image prompt and query augmentation. So a page
is cut into the real model's tiles (A4 13, US Letter 17) and becomes as many vectors, give or
take a few prompt tokens the real vocabulary may cut differently (A4 882, Letter 1 146). The
widths, depths and vocabulary are tiny: its vectors are noise. Tests, benchmarks and machines
without the hub use it.
"""

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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
from transformers.image_utils import PILImageResampling

# What DOCDB_EMBEDDER_MODEL names it by.
TINY_MODEL = "tiny"
# ColModernVBERT's: the test models make vectors of the real shape.
EMBEDDING_DIM = 128

# Bump when the tiny recipe changes, so a cached build from an older recipe is not reused.
TINY_RECIPE_VERSION = 2
TINY_MARKER = "docdb_tiny_recipe.json"

# The real checkpoint's geometry (its preprocessor_config.json and config.json).
LONGEST_EDGE = 2048
TILE_SIZE = 512
PATCH_SIZE = 16
PIXEL_SHUFFLE = 4
IMAGE_MEAN_STD = 0.5
# Image tokens a tile becomes: an 8 x 8 grid.
TOKENS_PER_TILE = (TILE_SIZE // PATCH_SIZE // PIXEL_SHUFFLE) ** 2
# ModernBERT's longest input; the real tokenizer says so in its model_max_length.
MAX_TOKENS = 8192

# ModernBERT's special tokens, first in its vocabulary as here.
MODERNBERT_SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
# The 40 tokens the checkpoint adds after ModernBERT's vocabulary (`<image>` last, id 50407 in
# the real one). `<|begin_of_text|>` is not among them: the prompt's copy is ordinary text.
IDEFICS3_TOKENS = [
    *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)),
    "<global-img>",
    "<fake_token_around_image>",
    "<end_of_utterance>",
    "<image>",
]
# Text the byte-level BPE learns its merges from. Every word in it ends up a whole token, as
# the words of the image prompt are in ModernBERT's 50k vocabulary; other words split into
# pieces. "\n\n", which ends a split image's rows, is one token as in ModernBERT's.
TINY_CORPUS = [
    "<|begin_of_text|>User:",
    "Describe the image.",
    "\nAssistant:",
    "\n",
    "\n\n",
    "What is the total amount on the invoice?",
    "Quarterly revenue grew in every region except the north.",
    "Figure 3 shows the attention map of the retrieval model.",
    "Which report describes the budget for the new school year, and who signed it?",
    "Invoice number, date, tax, payment due, total due in EUR and USD.",
    "what is the revenue by region for this year, and which page shows it?",
]


def tiny_model_build(path: Path) -> Path:
    """Build the random test model in `path`: offline, deterministic, about a second."""
    processor = tiny_processor()
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


def tiny_processor() -> Any:
    """The test model's processor: the real one's image processing, prompt and geometry."""
    return ColModernVBertProcessor(
        image_processor=_tiny_image_processor(),
        tokenizer=tiny_tokenizer(),
        image_seq_len=TOKENS_PER_TILE,
    )


def tiny_tokenizer() -> Any:
    """A ModernBERT-like tokenizer with a few hundred tokens and the Idefics3 tokens added."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))  # noqa: S106 (a token, not a password)
    # ModernBERT's: GPT-2's split into words, punctuation runs and whitespace, then bytes.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        # Above what the corpus can fill, so that training merges every word of it whole.
        vocab_size=2000,
        special_tokens=MODERNBERT_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TINY_CORPUS, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(name, tokenizer.token_to_id(name)) for name in ("[CLS]", "[SEP]")],
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in IDEFICS3_TOKENS]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        # Vocabulary tokens, not passwords.
        unk_token="[UNK]",  # noqa: S106
        cls_token="[CLS]",  # noqa: S106
        sep_token="[SEP]",  # noqa: S106
        pad_token="[PAD]",  # noqa: S106
        mask_token="[MASK]",  # noqa: S106
        model_max_length=MAX_TOKENS,
    )


def _tiny_image_processor() -> Any:
    return Idefics3ImageProcessorPil(
        size={"longest_edge": LONGEST_EDGE},
        max_image_size={"longest_edge": TILE_SIZE},
        do_image_splitting=True,
        resample=PILImageResampling.LANCZOS,
        image_mean=[IMAGE_MEAN_STD] * 3,
        image_std=[IMAGE_MEAN_STD] * 3,
    )


def _tiny_config(tokenizer: Any) -> Any:
    # ModernBERT's defaults point at ids of its 50k vocabulary; these are the tiny one's.
    special_ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    text = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        **special_ids,
    )
    # One narrow layer with one head: at the real geometry a tile's 1 024 patches attend to each
    # other, which costs more than the whole text side per head, and the vectors are noise.
    vision = SiglipVisionConfig(
        image_size=TILE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=1,
    )
    vlm = ModernVBertConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pixel_shuffle_factor=PIXEL_SHUFFLE,
    )
    return ColModernVBertConfig(vlm_config=vlm, embedding_dim=EMBEDDING_DIM)
