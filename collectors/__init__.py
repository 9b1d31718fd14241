"""Sources of raw input batches: live pynput capture, dataset replay, and the behaviour simulator."""
