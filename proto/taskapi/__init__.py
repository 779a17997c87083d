"""Generated from taskapi's .proto file; see proto/__init__.py."""
