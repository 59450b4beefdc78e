"""Automatic compression (ACT's auto mode): pick a strategy by trying candidate recipes."""
