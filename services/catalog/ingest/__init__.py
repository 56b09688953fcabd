"""Bulk ingestion: jobs and their items (resumable, idempotent by item key), the photos staged for
them, and the queue the gateway's workers lease items from."""
