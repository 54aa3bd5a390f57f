"""Business event storage: the merge (key layout at its top), the writer and the reader."""
