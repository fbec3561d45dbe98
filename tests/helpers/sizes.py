"""The smallest encoder and model settings the end-to-end tests run with (same code paths)."""

TINY_ENCODERS = {
    "tiny_vision": {"image_size": 32, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "intermediate_size": 32, "patch_size": 8},
    "tiny_text": {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2},
}
TINY_MODEL = {"hidden_size": 32, "depth": 2, "num_heads": 2}
