"""Pure domain code: no I/O. Everything here takes values and returns values."""
