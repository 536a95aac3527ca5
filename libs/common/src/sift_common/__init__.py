"""Shared contracts, topology, settings, locks, store and helpers for every Sift service."""
