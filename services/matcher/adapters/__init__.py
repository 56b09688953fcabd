"""The matcher's adapters: the catalog's internal API, snapshots in the object store, model metadata."""
