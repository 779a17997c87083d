"""pfs: the versioned, content-addressed file system (core, storage, gRPC service, S3 gateway)."""
