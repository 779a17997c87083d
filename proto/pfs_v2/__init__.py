"""Generated from pfs_v2's .proto file; see proto/__init__.py."""
