"""Vision (SigLIP) and text (T5) encoders through transformers' `from_pretrained`.

Real runs point at local copies of siglip-so400m-patch14-384 and t5-v1_1-xxl. The embedded
default builds small models of the same two architectures, saves them with
`save_pretrained` and then loads them exactly like real weights, so the default exercises
the real code path and nothing is ever downloaded.

The vision tower is frozen, as in RDT: its SigLIP features are general enough and freezing
it keeps fine-tuning memory and time down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# Quiet the "install torchvision" notice: rdtflow resizes and normalises with torch itself.
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()

from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

SPECIAL_TOKENS = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>"}


def build_small_vision_tower(out_dir: Path, image_size: int, settings: dict, seed: int) -> None:
    """Save a randomly initialised SigLIP vision tower and its image processor."""
    torch.manual_seed(seed)
    config = SiglipVisionConfig(image_size=image_size, **settings)
    SiglipVisionModel(config).save_pretrained(out_dir)
    processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor.save_pretrained(out_dir)


def build_small_text_encoder(out_dir: Path, settings: dict, max_tokens: int, seed: int) -> None:
    """Save a randomly initialised T5 encoder with a byte-level tokenizer (any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {SPECIAL_TOKENS["pad"]: 0, SPECIAL_TOKENS["eos"]: 1, SPECIAL_TOKENS["unk"]: 2}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=SPECIAL_TOKENS["pad"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        model_max_length=max_tokens,
    )
    tokenizer.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(vocab), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **settings)
    T5EncoderModel(config).save_pretrained(out_dir)


@dataclass
class VisionEncoder:
    """A frozen SigLIP tower plus the preprocessing its processor prescribes."""

    tower: SiglipVisionModel
    image_size: int
    mean: torch.Tensor  # (3,)
    std: torch.Tensor  # (3,)

    @classmethod
    def load(cls, path: Path, dtype: torch.dtype = torch.float32) -> "VisionEncoder":
        tower = SiglipVisionModel.from_pretrained(path, dtype=dtype).eval()
        processor = AutoImageProcessor.from_pretrained(path)
        size = processor.size
        return cls(
            tower=tower,
            image_size=int(size["height"] if "height" in size else size["shortest_edge"]),
            mean=torch.tensor(processor.image_mean, dtype=torch.float32),
            std=torch.tensor(processor.image_std, dtype=torch.float32),
        )

    @property
    def mean_colour(self) -> torch.Tensor:
        """uint8 RGB (3,) of the processor's mean: what a missing image slot shows, as in RDT."""
        return (self.mean * 255).round().to(torch.uint8)

    @property
    def token_dim(self) -> int:
        return self.tower.config.hidden_size

    @property
    def tokens_per_image(self) -> int:
        return (self.tower.config.image_size // self.tower.config.patch_size) ** 2

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> normalised pixels (N, 3, S, S).

        Non-square frames are padded to a square with the processor's mean colour (as RDT
        does, so nothing is cropped away), then resized and normalised.
        """
        pixels = images.permute(0, 3, 1, 2).float() / 255.0
        height, width = pixels.shape[-2:]
        if height != width:
            side = max(height, width)
            canvas = self.mean.to(pixels.device)[None, :, None, None].expand(len(pixels), 3, side, side).clone()
            top, left = (side - height) // 2, (side - width) // 2
            canvas[:, :, top : top + height, left : left + width] = pixels
            pixels = canvas
        if pixels.shape[-1] != self.image_size:
            pixels = F.interpolate(pixels, size=(self.image_size,) * 2, mode="bicubic", antialias=True).clamp(0, 1)
        return (pixels - self.mean[None, :, None, None].to(pixels.device)) / self.std[None, :, None, None].to(pixels.device)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (N, H, W, 3) -> patch tokens (N, P, D) from the last encoder layer."""
        pixels = self.preprocess(images).to(self.tower.dtype)
        return self.tower(pixel_values=pixels).last_hidden_state


TEXT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def text_encoder_placement(settings: dict, built_small: bool) -> dict:
    """`from_pretrained` arguments that make the text encoder fit where encode_lang runs.

    T5-XXL's encoder is 4.8 B parameters: 19 GB in fp32 (what users who load it by default
    hit, with activations about 27 GB), 9.5 GB in bf16. bf16 therefore fits a 24 GB card
    whole; on a smaller budget accelerate keeps the layers that do not fit in CPU memory and
    streams each to the GPU when it runs. Without a GPU it runs on the CPU in bf16.
    """
    dtype = settings["text_dtype"]
    kwargs: dict = {"dtype": TEXT_DTYPES[dtype] if dtype != "auto" else torch.float32 if built_small else torch.bfloat16}
    device = settings["text_device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return kwargs
    import psutil

    budget = settings["text_gpu_memory_gib"]
    if budget is None:
        budget = max(torch.cuda.mem_get_info(0)[0] / 2**30 - 2, 1)
    return {**kwargs, "device_map": "auto",
            "max_memory": {0: int(budget * 2**30), "cpu": int(psutil.virtual_memory().available * 0.9)}}


@dataclass
class TextEncoder:
    tokenizer: PreTrainedTokenizerFast
    encoder: T5EncoderModel
    max_tokens: int

    @classmethod
    def load(cls, path: Path, max_tokens: int, **placement) -> "TextEncoder":
        """Tokenizer and encoder; `placement` is text_encoder_placement's (default: fp32 on CPU)."""
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = T5EncoderModel.from_pretrained(path, **{"dtype": torch.float32, **placement}).eval()
        return cls(tokenizer=tokenizer, encoder=encoder, max_tokens=max_tokens)

    @property
    def input_device(self) -> torch.device:
        """Where token ids go: the first GPU when accelerate placed the model, else the CPU."""
        return torch.device("cuda", 0) if getattr(self.encoder, "hf_device_map", None) else self.encoder.device

    @torch.no_grad()
    def encode(self, text: str) -> torch.Tensor:
        """One instruction -> its token embeddings (L, D) in fp32 on the CPU, unpadded."""
        tokens = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_tokens)
        hidden = self.encoder(input_ids=tokens["input_ids"].to(self.input_device)).last_hidden_state
        return hidden[0].float().cpu()
