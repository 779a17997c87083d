"""Generated from maintenance_v1's .proto file; see proto/__init__.py."""
