"""Durable registry: issuers, terminals (and, with the identity work, citizens and credentials)."""
