"""Images: stored once per organisation by SHA-256, with what their EXIF data says."""
