"""Regenerate the RPC table of docs/compat.md from proto/, the two clients and the statuses below.

    python docs/compat_table.py [PYTHON_PACHYDERM_SITE_PACKAGES] > /tmp/table.md

Every RPC of every service in proto/ gets one row: the pachyderm-sdk 2.12.2 method(s) and
python-pachyderm 7.6.0 method(s) that call it, its status here and the tests that show it.
tests/compat/test_compat_doc.py checks that docs/compat.md has a row for every RPC.
"""
from __future__ import annotations

import glob
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OK = "implemented"
UNLICENSED = "Pachyderm's answer for an unlicensed cluster / auth off"
FP = "FAILED_PRECONDITION (names why)"

# service -> (default status, default tests)
SERVICES = {
    "pfs_v2.API": (OK, "tests/service/test_sdk.py, tests/service/test_sdk_more.py"),
    "pps_v2.API": (OK, "tests/pps_e2e/, tests/compat/test_pps_extra.py"),
    "transaction_v2.API": (OK, "tests/compat/test_transactions.py"),
    "admin_v2.API": (OK, "tests/compat/test_enterprise.py, tests/service/test_pachd.py"),
    "versionpb_v2.API": (OK, "tests/service/test_sdk.py::test_version"),
    "auth_v2.API": (OK + " (Pachyderm's roles and tokens, docs/auth.md; auth off: Pachyderm's 'not activated')",
                    "tests/auth/, tests/cli/test_cli_auth.py, tests/service/test_sdk.py::test_auth_not_activated"),
    "enterprise_v2.API": (UNLICENSED, "tests/compat/test_enterprise.py"),
    "license_v2.API": (UNLICENSED, "tests/compat/test_enterprise.py"),
    "identity_v2.API": (UNLICENSED, "tests/compat/test_enterprise.py"),
    "debug_v2.Debug": (OK, "tests/compat/test_debug_logs_metadata.py"),
    "logs.API": (OK + " (user queries; admin/LogQL queries: " + FP + ")", "tests/compat/test_debug_logs_metadata.py"),
    "metadata.API": (OK + " (project, repo, branch, commit, pipeline, cluster)",
                     "tests/compat/test_debug_logs_metadata.py"),
    "pjs.API": (FP + ": the Pachyderm Job System is not part of this pachd", "tests/compat/test_debug_logs_metadata.py"),
    "snapshot.API": (FP + ": metadata is in RocksDB, not PostgreSQL", "tests/compat/test_debug_logs_metadata.py"),
    "storage.Fileset": (OK, "tests/compat/test_pfs_extra.py::test_storage_fileset_api"),
    "pachyderm.worker.Worker": (OK + " (served by each pipeline worker to its user code, not by pachd)",
                                "tests/worker/, tests/pps_e2e/test_user_code.py"),
    "worker_v1.Tasks": (OK + " (internal: pachd hands datums to workers)", "tests/worker/, tests/pps_e2e/"),
    "maintenance_v1.API": (OK + " (ours, not Pachyderm's: pachctl garbage-collect, extract; docs/storage.md)",
                           "tests/cli/test_cli_storage.py, tests/core/test_gc.py"),
    "pfs_batch_v1.API": (OK + " (ours, not Pachyderm's: ListFile with many FileInfos to a message, used by "
                         "pachctl list file and the mount; falls back to pfs_v2 ListFile; ReadRange, a byte "
                         "range in one reply, used by the mount's random reads; falls back to GetFile)",
                         "tests/service/test_batched_listing.py, tests/service/test_read_range.py"),
}

# (service, rpc) -> (status, tests); overrides the service default
RPCS = {
    **{("auth_v2.API", m): (OK + " (OIDC logins through an external identity provider, docs/auth.md)",
                            "tests/auth/test_oidc.py, tests/cli/test_cli_oidc.py")
       for m in ("GetConfiguration", "SetConfiguration", "Authenticate", "GetOIDCLogin")},
    **{("auth_v2.API", m): (OK + " (Pachyderm's groups: members get the roles bound to `group:NAME`, docs/auth.md)",
                            "tests/auth/test_groups_and_defaults.py, tests/cli/test_cli_auth.py")
       for m in ("SetGroupsForUser", "ModifyMembers", "GetGroups", "GetGroupsForPrincipal", "GetUsers")},
    ("pfs_v2.API", "Fsck"): (OK + " (pachctl fsck [--fix]; --zombie: " + FP + ")", "tests/cli/test_cli_storage.py"),
    ("pfs_v2.API", "CheckStorage"): (OK + " (pachctl check storage [--read-chunk-data])",
                                     "tests/cli/test_cli_storage.py"),
    ("pfs_v2.API", "DiffFile"): (OK + " (different old/new paths matched by full path)",
                                 "tests/compat/test_pfs_extra.py, tests/compat/test_client_errors.py"),
    ("pfs_v2.API", "DeleteRepo"): (OK + " (a missing repo: deleted=false, no error)",
                                   "tests/compat/test_client_errors.py"),
    ("pfs_v2.API", "InspectFile"): (OK + " (Pachyderm's not-found texts)", "tests/compat/test_client_errors.py"),
    ("pfs_v2.API", "InspectCommit"): (OK + " (commit.branch filled)", "tests/compat/test_client_errors.py"),
    ("pfs_v2.API", "ModifyFile"): (OK + " (http/https/s3/file URLs, also mixed in one stream)",
                                   "tests/compat/test_put_url.py, tests/service/test_sdk.py"),
    ("pfs_v2.API", "Egress"): (OK + " (s3://, file://; SQL targets: " + FP + ")",
                               "tests/compat/test_pfs_extra.py::test_egress_to_a_local_directory"),
    ("pfs_v2.API", "ListTask"): (OK + " (always empty: pfs queues no tasks)", "tests/compat/test_pfs_extra.py"),
    ("pps_v2.API", "CreateSecret"): (OK, "tests/compat/test_secrets.py, tests/k8s/test_secrets.py"),
    ("pps_v2.API", "DeleteSecret"): (OK, "tests/compat/test_secrets.py, tests/k8s/test_secrets.py"),
    ("pps_v2.API", "InspectSecret"): (OK, "tests/compat/test_secrets.py, tests/k8s/test_secrets.py"),
    ("pps_v2.API", "ListSecret"): (OK, "tests/compat/test_secrets.py, tests/k8s/test_secrets.py"),
    ("pps_v2.API", "CreateDatum"): (OK, "tests/compat/test_pps_extra.py, tests/compat/test_jupyterlab.py"),
    ("pps_v2.API", "ListDatum"): (OK + " (of a job, or of an input spec)",
                                  "tests/compat/test_pps_extra.py, tests/pps_e2e/test_pipelines.py"),
    ("pps_v2.API", "GetLogs"): (OK + " (follow/tail/since; a finished job's stream ends)",
                                "tests/compat/test_pps_extra.py, tests/pps_e2e/"),
    ("pps_v2.API", "RunCron"): (OK + " (no cron input: \"pipeline doesn't have a cron input\")",
                                "tests/compat/test_pps_extra.py, tests/pps/test_cron.py"),
    ("pps_v2.API", "RunPipeline"): ("Pachyderm's own answer: UNKNOWN \"unimplemented\"", "tests/compat/test_pps_extra.py"),
    ("pps_v2.API", "GetClusterDefaults"): (OK + " (merged under new/updated specs)",
                                           "tests/compat/test_pps_extra.py"),
    ("pps_v2.API", "SetClusterDefaults"): (OK + " (merged under new/updated specs; `regenerate` updates the pipelines whose effective spec changes, `reprocess` reprocesses their datums, `dry_run`; affected pipelines returned)",
                                           "tests/compat/test_pps_extra.py, tests/compat/test_defaults_regenerate.py"),
    ("pps_v2.API", "GetProjectDefaults"): (OK + " (merged under new/updated specs)",
                                           "tests/compat/test_pps_extra.py"),
    ("pps_v2.API", "SetProjectDefaults"): (OK + " (merged under new/updated specs; `regenerate` updates the pipelines whose effective spec changes, `reprocess` reprocesses their datums, `dry_run`; affected pipelines returned)",
                                           "tests/compat/test_pps_extra.py, tests/compat/test_defaults_regenerate.py"),
    ("pps_v2.API", "RenderTemplate"): (OK + " (jsonnet, args as top-level arguments; `pachctl create pipeline --jsonnet --arg`)",
                                       "tests/compat/test_pps_extra.py, tests/cli/test_cli_pps.py"),
    ("pps_v2.API", "ListTask"): (OK + " (always empty: datums go through the master's task board)",
                                 "tests/compat/test_every_method.py"),
    ("pps_v2.API", "GetKubeEvents"): (FP + ": needs the Kubernetes executor", "tests/compat/test_every_method.py"),
    ("pps_v2.API", "QueryLoki"): (FP + ": no Loki; use GetLogs", "tests/compat/test_every_method.py"),
    ("pps_v2.API", "RunLoadTest"): (FP + ": pps load-test DAGs; use debug RunPFSLoadTest",
                                    "tests/compat/test_every_method.py"),
    ("pps_v2.API", "RunLoadTestDefault"): (FP + ": as RunLoadTest", "tests/compat/test_every_method.py"),
    ("debug_v2.Debug", "Profile"): (FP + ": Go pprof; this pachd is Python", "tests/compat/test_debug_logs_metadata.py"),
    ("debug_v2.Debug", "Binary"): (FP + ": no Go binary", "tests/compat/test_debug_logs_metadata.py"),
    ("debug_v2.Debug", "Trace"): (FP + ": Go execution traces", "tests/compat/test_debug_logs_metadata.py"),
    ("storage.Fileset", "ReadFilesetCDR"): (FP + ": chunks are not stored as Pachyderm's CDRs",
                                            "tests/compat/test_pfs_extra.py::test_storage_fileset_api"),
    ("pfs_v2.API", "RunLoadTest"): (OK + " (Pachyderm 2.7's pfs load test; raw stub only)",
                                    "tests/compat/test_pfs_extra.py::test_pfs_load_test_runs_a_spec_and_reports_errors_in_the_answer"),
    ("pfs_v2.API", "RunLoadTestDefault"): (OK + " (the default specs, scaled down ~100x)", "tests/compat/test_every_method.py"),
    ("admin_v2.API", "RestartPachyderm"): (OK + " (restarts the `pachd` command; embedded: " + FP + ")",
                                           "tests/compat/test_enterprise.py"),
}


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s).lower()


def rpcs():
    out = []
    for f in sorted(glob.glob(str(ROOT / "proto/*/*.proto"))):
        text = Path(f).read_text()
        pkg = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        for sm in re.finditer(r"service\s+(\w+)\s*\{(.*?)\n\}", text, re.S):
            for m in re.finditer(r"rpc\s+(\w+)\s*\(", sm.group(2)):
                out.append((f"{pkg}.{sm.group(1)}", m.group(1)))
    return out


def sdk_methods() -> dict:
    """(service, rpc) -> pachyderm-sdk methods: the generated stub method plus extension
    methods whose source calls it."""
    from pachyderm_sdk import Client
    c = Client(host="localhost", port=1)
    found: dict = {}
    try:
        for attr in ("admin", "auth", "debug", "enterprise", "identity", "license", "logs", "metadata", "pjs",
                     "pfs", "pps", "snapshot", "storage", "transaction", "_version_api"):
            stub = getattr(c, attr)
            for name, fn in inspect.getmembers(type(stub), inspect.isfunction):
                if name.startswith("_"):
                    continue
                try:
                    src = inspect.getsource(fn)
                except OSError:
                    continue
                for m in re.finditer(r"__rpc_(\w+)\(", src):
                    found.setdefault((attr.strip("_").replace("_api", ""), m.group(1)), set()).add(
                        f"{attr.strip('_').replace('version_api', 'version')}.{name}")
                for m in re.finditer(r"super\(\)\.(\w+)\(", src):
                    found.setdefault((attr, m.group(1)), set()).add(f"{attr}.{name}")
    finally:
        c._channel.close()
    return found


def pp_methods(site: Path) -> dict:
    found: dict = {}
    for f in sorted((site / "python_pachyderm" / "mixin").glob("*.py")):
        cur = None
        for line in f.read_text().splitlines():
            m = re.match(r"    def (\w+)\(", line)
            if m:
                cur = m.group(1)
            for r in re.finditer(r"__stub\.(\w+)\(", line):
                if cur and not cur.startswith("_"):
                    found.setdefault((f.stem, r.group(1)), set()).add(cur)
    return found


SDK_ATTR = {"pfs_v2.API": "pfs", "pps_v2.API": "pps", "transaction_v2.API": "transaction", "admin_v2.API": "admin",
            "versionpb_v2.API": "version", "auth_v2.API": "auth", "enterprise_v2.API": "enterprise",
            "license_v2.API": "license", "identity_v2.API": "identity", "debug_v2.Debug": "debug", "logs.API": "logs",
            "metadata.API": "metadata", "pjs.API": "pjs", "snapshot.API": "snapshot", "storage.Fileset": "storage"}
PP_MIXIN = {"pfs_v2.API": "pfs", "pps_v2.API": "pps", "transaction_v2.API": "transaction", "admin_v2.API": "admin",
            "versionpb_v2.API": "version", "auth_v2.API": "auth", "enterprise_v2.API": "enterprise",
            "license_v2.API": "license", "identity_v2.API": "identity", "debug_v2.Debug": "debug"}


def main(argv) -> None:
    site = Path(argv[1]) if len(argv) > 1 else None
    sdk = sdk_methods()
    pp = pp_methods(site) if site else {}
    print("| Service | RPC | pachyderm-sdk 2.12.2 | python-pachyderm 7.6.0 | Status here | Tests |")
    print("|---|---|---|---|---|---|")
    for svc, rpc in rpcs():
        attr = SDK_ATTR.get(svc)
        s = sorted(sdk.get((attr, snake(rpc)), ())) if attr else []
        p = sorted(pp.get((PP_MIXIN.get(svc, "-"), rpc), ()))
        status, tests = SERVICES.get(svc, ("?", ""))
        status, tests = RPCS.get((svc, rpc), (status, tests))
        print(f"| {svc} | {rpc} | {', '.join(f'`{x}`' for x in s) or '-'} | "
              f"{', '.join(f'`{x}`' for x in p) or '-'} | {status} | {tests or '-'} |")


if __name__ == "__main__":
    main(sys.argv)
