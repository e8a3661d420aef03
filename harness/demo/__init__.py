"""The bundled demo: fixture instances in SWE-bench format and a scripted OpenAI-compatible server.

A product feature (make demo runs the whole pipeline offline with them), not a test double.
"""
