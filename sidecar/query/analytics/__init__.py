"""Event analytics: trends, funnels, retention over the events column blocks."""
