"""The gRPC front end of pachd: thin servicers over the core (pfs.core) and pps.

- convert.py  core records <-> pfs_v2 messages (the only place requests are normalised)
- errors.py   core errors -> gRPC status codes (the only place)
- pfs_api.py  pfs_v2.API
- urls.py     streaming http(s)/s3 sources for put file -f URL
"""
