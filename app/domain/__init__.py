"""Pure domain model: decisions and state, no I/O, no clock, no randomness."""
