"""auth: Pachyderm's access model — users, robots and pipelines with their own tokens, roles
bound on the cluster, a project or a repo — as a core with no gRPC in it, plus the thin
gRPC front: the auth_v2 servicer and pachd's server interceptor.

- roles.py        the roles and their permissions (Pachyderm's src/server/auth/server/roles.go)
- model.py        resources, subjects, the error tree
- state.py        the persisted state (tokens as hashes, role bindings), written atomically
- core.py         Auth: activate/deactivate, authenticate a token, evaluate permissions
- rules.py        the explicit RPC -> permission map the interceptor enforces (fails closed)
- interceptor.py  the gRPC server interceptor (authenticate, check, filter lists)
- oidc.py         OIDC logins: login URL, code exchange, ID token checks (no gRPC, no HTTP server)
- service.py      the auth_v2.API servicer

Invariants:
- A token is never stored: only its SHA-256 (as Pachyderm) with its subject and expiry.
  Expiry is checked on every call; a revoked or expired token is refused exactly like a
  forged one (UNAUTHENTICATED).
- Permissions of a subject on a resource are the union of the roles bound to it (and to
  `allClusterUsers`) on the cluster, then the resource's project, then the repo.
  `pach:root` always has clusterAdmin.
- While auth is active, an RPC missing from rules.RULES is refused (fail closed); only
  version, health, reflection, InspectCluster and Activate are open without a token.
- `pfs/` and `pps/` never import this package: pachd wires it in (interceptor, hooks).
- There is no enterprise licensing here: Activate really activates.
"""
