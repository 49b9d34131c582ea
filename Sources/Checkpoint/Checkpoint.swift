// Save and restore of a MemoryFile; see docs/FORMAT.md.
