"""Catalogued individuals and the species they are of: create, browse, edit, the assignment of
annotations to them, and the two curatorial repairs, merge and split."""
