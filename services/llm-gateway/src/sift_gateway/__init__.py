"""Sift llm-gateway service."""
