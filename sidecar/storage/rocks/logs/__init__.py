"""Log records in RocksDB: compressed blocks with skip headers (merge.py), read back by reader.py."""
