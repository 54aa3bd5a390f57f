"""Names for resources without a usable ``service.name``, shared by ingest and every query API."""

NO_SERVICE_NAME = "OTLPResourceNoServiceName"  # resource with no attributes at all (Jaeger's translator)
UNKNOWN_SERVICE = "unknown_service"  # attributes but no string service.name (the OTel SDK default prefix)
