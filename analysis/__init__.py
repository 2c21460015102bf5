"""Scaling-law analysis: load results, fit power laws, estimate the compute multiplier, draw figures, write reports."""
