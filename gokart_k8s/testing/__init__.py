"""Test helpers that ship with gokart_k8s (emulators, fixtures)."""
