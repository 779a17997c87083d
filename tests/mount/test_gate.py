"""fs.Gate on its own (trio, no FUSE): writers run together; a commit waits for the writers in
flight, holds off new ones until it is done, and two commits never overlap."""
from __future__ import annotations

import trio
import trio.testing

from pachctl.mount.fs import Gate


def test_commit_waits_for_writers_and_holds_off_new_ones():
    order = []

    async def writer(g, name, started, release):
        await g.enter()
        order.append(f"{name} in")
        started.set()
        await release.wait()
        order.append(f"{name} out")
        await g.leave()

    async def commit(g, name, release):
        await g.close()
        order.append(f"{name} begins")
        await release.wait()
        order.append(f"{name} ends")
        await g.open()

    async def main():
        g = Gate()
        a_in, b_in, c_in = trio.Event(), trio.Event(), trio.Event()
        release_writers, release_commit, release_late, release_second = (trio.Event() for _ in range(4))
        async with trio.open_nursery() as n:
            n.start_soon(writer, g, "a", a_in, release_writers)
            n.start_soon(writer, g, "b", b_in, release_writers)
            await a_in.wait()
            await b_in.wait()
            n.start_soon(commit, g, "commit1", release_commit)
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(order) == ["a in", "b in"]  # the commit waits for both writers (trio picks the order)
            n.start_soon(writer, g, "late", c_in, release_late)
            n.start_soon(commit, g, "commit2", release_second)
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(order) == ["a in", "b in"]  # the late writer and the second commit wait too
            release_writers.set()
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(order[2:4]) == ["a out", "b out"] and order[4:] == ["commit1 begins"]
            release_commit.set()
            await trio.testing.wait_all_tasks_blocked()
            assert order[5] == "commit1 ends"
            release_late.set()
            release_second.set()
        # the late write and the second commit both ran, one after the other, never overlapping
        late = (order.index("late in"), order.index("late out"))
        second = (order.index("commit2 begins"), order.index("commit2 ends"))
        assert late[1] < second[0] or second[1] < late[0], order
    trio.run(main)
