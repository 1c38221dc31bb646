"""Schemes: the core steps composed into the work of one electrode (auto-sort, sort_electrode)."""
