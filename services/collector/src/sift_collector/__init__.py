"""Sift collector service."""
