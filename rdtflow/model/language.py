"""Instruction embeddings: computed once per distinct instruction, then only looked up.

The text encoder (T5-XXL for real runs, ~27 GB) never runs inside training or evaluation;
this stage writes a small table they read instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from rdtflow.model.encoders import TextEncoder, text_encoder_placement

# Encoded into every table: RDT's condition masking replaces a masked instruction by the
# embedding of the empty one (train.augment.recipe upstream). No episode has it: a blank
# instruction is a rejected episode.
EMPTY_INSTRUCTION = ""


def instruction_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_language_table(embeddings: dict[str, torch.Tensor], path: Path) -> None:
    """Write instruction -> (L, D) token embeddings (format in docs/formats.md)."""
    tensors = {instruction_key(text): tensor.contiguous() for text, tensor in embeddings.items()}
    names = {instruction_key(text): text for text in embeddings}
    save_file(tensors, str(path), metadata={"instructions": json.dumps(names)})


def load_language_table(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as table:
        names = json.loads(table.metadata()["instructions"])
        return {names[key]: table.get_tensor(key) for key in table.keys()}


def encode_instructions(index_path: Path, text_encoder_dir: Path, encoders_cfg: dict, out_path: Path) -> int:
    """Embed every distinct instruction of the valid episodes, and the empty instruction;
    returns how many episode instructions there were."""
    index = pd.read_parquet(index_path)
    instructions = sorted(index.loc[index["valid"], "instruction"].unique())
    placement = text_encoder_placement(encoders_cfg, built_small=encoders_cfg["text_path"] is None)
    encoder = TextEncoder.load(text_encoder_dir, encoders_cfg["max_lang_tokens"], **placement)
    texts = [*instructions, EMPTY_INSTRUCTION]
    embeddings = {text: encoder.encode(text) for text in tqdm(texts, desc="encoding instructions")}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_language_table(embeddings, out_path)
    return len(instructions)
