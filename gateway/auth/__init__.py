"""Principals, roles, permissions and API tokens."""
