"""Permanent parse failures; their codes are the vector_store.file `last_error.code` values."""

from __future__ import annotations


class UnsupportedFile(Exception):
    code = "unsupported_file"


class InvalidFile(Exception):
    code = "invalid_file"
