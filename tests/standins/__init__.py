"""Stand-ins for outside services, so tests drive the real clients without a network."""
