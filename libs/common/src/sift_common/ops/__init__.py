"""Operators' commands on the `sift` command line: `sift doctor` (is anything wrong now, and
what fixes it), `sift report` (what the pipeline and the LLMs did over a window), `sift backup`
and `sift restore` (the store, with retention)."""
