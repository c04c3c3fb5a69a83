"""Experiments on top of both engines: side-by-side runs, comparisons, plots and the CLI."""
