"""What tests share beside their fixtures: fakes, tiny corpora and files, the scripted pipeline, Chromium.

Fixtures live in the conftest.py files; these are plain modules a test imports (``from helpers.fakes import
FakeEncoder``): pyproject.toml puts tests/ on ``pythonpath``, and test modules never import each other.
"""
