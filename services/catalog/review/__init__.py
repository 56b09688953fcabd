"""The review of proposed matches: an identification of an annotation with the candidates shown, and
the reviewer's decision on it (confirmed, new individual, rejected)."""
