"""Generated from pps_v2's .proto file; see proto/__init__.py."""
