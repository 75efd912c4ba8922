"""Process managers: long-running reactions to events that issue commands."""
