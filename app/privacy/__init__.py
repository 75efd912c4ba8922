"""Crypto-shredding of personal data: fields sealed under a key per data subject, keys wrapped by KEKs.

Pure code (no I/O): sealing.py seals and opens values, key_encryption.py wraps
and unwraps the per-subject data keys. Which fields are personal, and whose,
is declared in the domain (app.domain.personal).
"""
