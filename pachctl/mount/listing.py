"""Directory listings of remote commits: fetched a page at a time, kept once complete.

Invariants:
- A `Listing` is one directory at one commit id; `more()` appends the next page (sorted by
  name, as ListFile returns it) until `complete`. Nothing is fetched before it is needed.
- Only complete listings of finished commits are cached (`ListingCache`): a finished
  commit never changes, so a cached listing is never stale. An open commit is re-listed.
- The cache is bounded by the total number of entries it holds (least recently used
  listings are dropped first), so memory does not grow with what has been browsed.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

from pachctl.mount.remote import Entry


class Listing:
    def __init__(self, remote, view, commit: str, path: str, finished: bool):
        self.remote, self.view, self.commit, self.path = remote, view, commit, path
        self.finished = finished
        self.entries: list[Entry] = []
        self.complete = False
        self._by_name: Optional[dict] = None

    def more(self) -> int:
        """Fetch the next page (blocking); the number of new entries."""
        if self.complete:
            return 0
        after = self.entries[-1].path if self.entries else None
        page = self.remote.list_page(self.view, self.commit, self.path, after)
        self.entries.extend(page)
        if len(page) < self.remote.PAGE:
            self.complete = True
        self._by_name = None
        return len(page)

    def fetch_all(self) -> "Listing":
        while not self.complete:
            self.more()
        return self

    def find(self, name: str) -> Optional[Entry]:
        if self._by_name is None:
            self._by_name = {e.name: e for e in self.entries}
        return self._by_name.get(name)


class ListingCache:
    def __init__(self, max_entries: int = 1_000_000):
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(view, commit: str, path: str) -> tuple:
        return (view.project, view.repo, commit, path)

    def get(self, view, commit: str, path: str) -> Optional[Listing]:
        k = self.key(view, commit, path)
        with self._lock:
            got = self._items.get(k)
            if got is not None:
                self._items.move_to_end(k)
            return got

    def put(self, listing: Listing) -> None:
        if not (listing.complete and listing.finished):
            return
        k = self.key(listing.view, listing.commit, listing.path)
        with self._lock:
            old = self._items.pop(k, None)
            if old is not None:
                self._total -= len(old.entries)
            self._items[k] = listing
            self._total += len(listing.entries)
            while self._total > self.max_entries and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._total -= len(dropped.entries)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0
