"""Downloads through the signed URLs of the local object store (S3 serves its own presigned URLs)."""
