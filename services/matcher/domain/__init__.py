"""The matcher's domain: FAISS indexes per key, ranking by individual, the new-individual decision.

No HTTP and no object-store I/O here: the service layer feeds records in and reads results out.
"""
