"""Command lines that write clip-record shards: `lawm-prepare videos` (prepare.py), `lawm-prepare rlds`."""
