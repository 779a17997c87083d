"""Generated from pfs_batch_v1's .proto file; see proto/__init__.py."""
