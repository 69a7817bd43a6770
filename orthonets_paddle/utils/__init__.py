"""Small helpers shared by every package: CPU threads, CLI error handling, name hints."""
