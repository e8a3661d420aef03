"""Test doubles for the harness: a scripted OpenAI-compatible LLM server."""
