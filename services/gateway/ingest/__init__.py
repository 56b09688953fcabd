"""Bulk ingestion: jobs of archived photos, processed by workers that lease items from the catalog."""
