"""The audit log: append-only, hash-chained, in the database; who scanned or read what, where, when, why."""
