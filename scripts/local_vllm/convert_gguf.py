"""Convert a GGUF chat model into a bf16 Hugging Face folder vLLM can serve.

    <vLLM venv>/bin/python -P convert_gguf.py SOURCE_DIR GGUF_NAME OUT_DIR

A script for the vLLM venv's interpreter (torch, transformers), not a module of the project:
it imports nothing from Sift. transformers dequantises the GGUF on load but then refuses to
save a model marked GGUF-quantised, so the weights move into a fresh model built from the same
config. The saved config keeps `quantization_config: gguf`, which vLLM rejects ("Unknown
quantization method: gguf"), and the weights are plain bf16: the key is dropped.
"""

import json
import sys
from pathlib import Path

# Installed in the vLLM venv only; the project's type check sees them as unknown.
import torch  # type: ignore[import-not-found]
from transformers import AutoModelForCausalLM, AutoTokenizer  # type: ignore[import-not-found]


def convert(source: str, gguf_name: str, out: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_name)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_name, dtype=torch.bfloat16)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    path = out / "config.json"
    saved = json.loads(path.read_text())
    saved.pop("quantization_config", None)
    path.write_text(json.dumps(saved, indent=2) + "\n")
    if not tokenizer.chat_template:
        raise SystemExit("the GGUF brought no chat template")


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
