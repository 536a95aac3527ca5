"""Sift archiver service."""
