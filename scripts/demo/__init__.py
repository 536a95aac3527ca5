"""The end-to-end demo: the whole pipeline as processes, fed the bundled corpus (`make demo`)."""
