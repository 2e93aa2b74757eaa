"""Signing keys: files on disk, the key ring (current, next, retired) and the JWKS."""
