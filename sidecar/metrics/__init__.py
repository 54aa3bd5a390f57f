"""Prometheus metrics: families derived from ingested data at scrape time, and the sidecar's own."""
