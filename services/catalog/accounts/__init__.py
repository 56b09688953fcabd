"""Organisations (the tenants), their users and API keys, and the verification the gateway's
authentication asks for."""
