"""Stream processing: raw input batches become keystroke and mouse feature windows."""
