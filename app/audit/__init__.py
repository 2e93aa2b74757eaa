"""The audit log: append-only, hash-chained, in the database, sealed into an RFC 9162 Merkle tree with signed heads; who scanned or read what, where, when, why."""
