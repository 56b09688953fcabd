"""What the matcher reads: the indexed embeddings (for a full rebuild and its reconciliation) and the
change sequence it replays.

An annotation is *indexed* when it has an embedding and belongs to an active individual whose
species is a cetacean; its index key is (organisation, the individual's species, the embedding's
model version). Whenever something changes what the matcher should hold for an annotation (its
individual, a merge or split, a deletion, the individual's species), the domain that changes it
calls :func:`~services.catalog.internal.change_log.record_change` in the same transaction, so a
change never exists without its event or the other way round.
"""
