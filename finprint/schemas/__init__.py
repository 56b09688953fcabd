"""Wire schemas of the services' HTTP contracts, shared by the servers and their callers."""
