"""Renderers: a finished Report in, a string out. They never recompute and never print."""
