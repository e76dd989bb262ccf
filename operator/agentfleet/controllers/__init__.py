"""Reconcilers: parse -> place -> render -> apply what differs -> prune -> status."""
