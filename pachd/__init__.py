"""pachd: the composition root. It builds the stores, the pfs and pps cores, the gRPC
servicers, the S3 gateway and the background loops, and wires them together.

- server.py       the server process (flags, stores, health, reflection, shutdown)
- misc_api.py     version, admin
- auth_wiring.py  multi-user auth (the `auth` package) and TLS wired into the server
- pps_runtime.py  the pipeline system plugged into the server: master, servicers, executor

Invariants:
- This package is the one place that knows every layer: `pfs/` never imports `pps/` or
  `pachd/`, `pps/` never imports `pachd/`. Front ends (pachctl, the mount) talk gRPC.
"""
