"""Model versions: which version's index each shard serves, and the re-embedding that moves a catalogue
to a new version (blue/green per shard, the previous generation kept for a rollback)."""
