"""Sift analyzer service."""
