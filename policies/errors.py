from __future__ import annotations


class PolicyError(ValueError):
    """A policy is invalid; the message names the field path and what is wrong."""
