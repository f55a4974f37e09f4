"""One whole run per command: read, run a method on an engine, draw, write; what the CLI, the report, the callback
and scripts call."""
