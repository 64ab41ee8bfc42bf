"""Figures: the shared paper style, solution figures and comparison figures."""
