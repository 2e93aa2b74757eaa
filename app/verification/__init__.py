"""Server-side glue around the pure codes core: minting for citizens, online verification, trust sync."""
