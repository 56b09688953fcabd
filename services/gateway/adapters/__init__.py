"""Adapters of the gateway: clients of the four internal services."""
