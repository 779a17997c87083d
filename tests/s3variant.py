"""The S3 variant of the pfs suites: the same core and service tests, with chunks in SeaweedFS.

Wiring (no test is duplicated):
- tests/core's `make_pfs` fixture has a third parameter, ``s3``: a `Pfs` over RocksDB and an
  `S3ChunkStore` on the session's SeaweedFS `weed mini` (one bucket per session, one key
  prefix per test).
- tests/service's `pachd` fixture has a second parameter, ``s3``: a pachd *process* started as
  a user would, ``pachd --storage s3://<bucket>/<prefix>`` with AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY and AWS_ENDPOINT_URL in its environment.
- Every S3 item is marked ``s3``. Only the representative, fast `SUBSET` below runs by default;
  the other S3 items are marked ``slow`` and deselected unless ``PFS_TEST_STORAGE=s3``.
  ``PFS_TEST_STORAGE=local`` deselects every S3 item of these suites.

Run:
    pytest tests/core tests/service -m s3                        # the S3 subset
    PFS_TEST_STORAGE=s3 pytest tests/core tests/service -m s3    # every test, chunks in S3
    PFS_TEST_STORAGE=s3 pytest tests/core tests/service          # local and S3 variants

A name in `SUBSET` that matches no collected test fails the run, so renames cannot silently
shrink the subset.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "PFS_TEST_STORAGE"
TESTS = Path(__file__).resolve().parent

# {suite directory: {fixture whose "s3" parameter makes the S3 variant}}
SUITES = {"core": "make_pfs", "service": "pachd"}

# test function names (any parametrization) that run on S3 by default
SUBSET = {
    "core": {
        "test_identical_content_stored_once_across_files_commits_branches_repos",
        "test_small_files_are_packed",
        "test_chunks_indexed_only_after_their_pack",
        "test_put_local_stores_what_a_streamed_put_stores",
        "test_chunk_store_failure_publishes_nothing",
        "test_reopen_on_either_backend",
        "test_put_overwrite_append",
        "test_big_file_streams_in_pieces",
        "test_copy_shares_content",
        "test_tar_stream",
        "test_concurrent_sessions_on_one_open_commit",
        "test_squash_keeps_content_in_child",
        "test_delete_repo_reclaims_its_packs_nodes_and_chunk_entries",
        "test_squash_of_a_middle_commit_reclaims_exactly_its_unique_data",
        "test_collections_running_alongside_concurrent_writers",
    },
    "service": {
        "test_put_get_list_in_commit_context",
        "test_put_file_from_file_multi_mib",
        "test_get_file_tar",
        "test_delete_and_copy_file",
        "test_squash_and_drop_commit_sets",
        "test_health_and_reflection",
    },
}


def mode() -> str:
    """'subset' (default), 's3' (every test also on S3) or 'local' (no S3 variant)."""
    v = os.environ.get(ENV, "").strip().lower()
    if v in ("", "subset", "default"):
        return "subset"
    if v in ("s3", "all", "full"):
        return "s3"
    if v in ("local", "none", "off"):
        return "local"
    raise pytest.UsageError(f"{ENV}={v!r}: use s3 (every test on S3), local (none) or leave it unset")


def _suite(item) -> str | None:
    try:
        rel = Path(str(item.path)).resolve().relative_to(TESTS)
    except ValueError:
        return None
    return rel.parts[0] if rel.parts and rel.parts[0] in SUITES else None


def is_s3_item(item) -> bool:
    suite = _suite(item)
    cs = getattr(item, "callspec", None)
    return suite is not None and cs is not None and cs.params.get(SUITES[suite]) == "s3"


def modify_items(config, items: list) -> None:
    """pytest_collection_modifyitems for the S3 variant (called from tests/conftest.py)."""
    m = mode()
    keep, drop = [], []
    seen = {s: set() for s in SUITES}
    for item in items:
        if not is_s3_item(item):
            keep.append(item)
            continue
        suite = _suite(item)
        name = item.originalname or item.name
        if name in SUBSET[suite]:
            seen[suite].add(name)
            (drop if m == "local" else keep).append(item)
        else:
            item.add_marker(pytest.mark.slow)
            (keep if m == "s3" else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # a SUBSET name that matched nothing although its whole suite was collected: a rename
    # (this hook runs before -k/-m deselection, so it sees every collected item)
    for suite, names in SUBSET.items():
        if _whole_suite_collected(config, suite) and (missing := names - seen[suite]):
            raise pytest.UsageError(f"tests/s3variant.py SUBSET[{suite!r}] names tests that "
                                    f"do not exist (renamed?): {sorted(missing)}")


def _whole_suite_collected(config, suite: str) -> bool:
    args = [a for a in config.args if not a.startswith("-")] or [str(TESTS)]
    for a in args:
        if "::" in a:
            continue
        p = (Path(config.invocation_params.dir) / a).resolve()
        if p in (TESTS, TESTS / suite, TESTS.parent):
            return True
    return False
