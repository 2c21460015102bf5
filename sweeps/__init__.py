"""Sweep files (*.toml beside this module) and the code that expands, plans, launches, tracks and collects them."""
