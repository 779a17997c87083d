"""Suite-wide wiring: the shared SeaweedFS server and the S3 variant of the pfs suites.

- `seaweed_server` (session): one `weed mini` for every directory that does not define its
  own (tests/core and tests/service use it for their S3 variant, tests/s3backend for its
  end-to-end checks). See tests/s3servers.py.
- The S3 variant of tests/core and tests/service (which tests, how to run all of them with
  ``PFS_TEST_STORAGE=s3``) is described and selected in tests/s3variant.py.
- Property tests (hypothesis) have no per-example deadline: the suite runs on shared,
  loaded machines, and speed is measured in bench/, never by a test's clock.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from hypothesis import settings  # noqa: E402

from tests import s3variant  # noqa: E402
from tests.s3servers import seaweed_server  # noqa: E402,F401

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def pytest_collection_modifyitems(config, items):
    s3variant.modify_items(config, items)
