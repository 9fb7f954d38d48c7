"""Recipes: one folder per corpus; run as `python -m recipes.<name> [--data-dir D] [--exp-dir E] [--stage N] [--stop-stage M]`."""
