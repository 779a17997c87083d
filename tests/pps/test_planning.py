"""Incremental planning (pps.planning) gives the same answer as enumerating both sides in full,
for every input kind, over random histories of input commits (adds, deletes, modifications,
renames, files moving between join keys and groups)."""
from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pps.datums import classify, enumerate_datums
from pps.planning import key_index_items, member_range, parse_member, plan_changes, plannable
from pps.spec import CrossInput, GroupInput, JoinInput, PfsInput, UnionInput, iter_inputs
from tests.pps.test_datums import P, listing_for

REPOS = ("a", "b", "c")
NAMES = ["/k1-a", "/k1-b", "/k2-a", "/k2-b", "/k3-c", "/1", "/d/x", "/d/k1-y"]
FILES = st.dictionaries(st.sampled_from(NAMES), st.sampled_from([b"", b"x", b"y", b"zz"]), max_size=7)
STATE = st.fixed_dictionaries({r: FILES for r in REPOS})
HISTORY = st.lists(STATE, min_size=2, max_size=4)

PLAIN_GLOBS = st.sampled_from(["/*", "/**", "/d/*", "/", "/k*"])
KEYED_GLOBS = st.sampled_from([("/(*)-(*)", "$1"), ("/(*)-(*)", "$2"), ("/(*)-(*)", "$2$1"),
                               ("/(k*)-*", "$1"), ("/*", "same"), ("/d/(*)", "$1"), ("/(*)", "$1"),
                               ("/**", "")])
REPO = st.sampled_from(REPOS)
NAME = st.sampled_from(["a", "b", "x"])


def _plain():
    return st.builds(lambda r, g, n: P(r, g, name=n), REPO, PLAIN_GLOBS, NAME)


def _join_leaf():
    return st.builds(lambda r, gt, n, outer: P(r, gt[0], name=n, join_on=gt[1], outer_join=outer),
                     REPO, KEYED_GLOBS, NAME, st.booleans())


def _group_leaf():
    return st.builds(lambda r, gt, n: P(r, gt[0], name=n, group_by=gt[1]), REPO, KEYED_GLOBS, NAME)


def _name(p):  # Pachyderm rejects two children of one join or group with the same name
    return p.name


KEYED = st.one_of(
    st.builds(lambda ks: JoinInput(tuple(ks)), st.lists(_join_leaf(), min_size=1, max_size=3, unique_by=_name)),
    st.builds(lambda ks: GroupInput(tuple(ks)), st.lists(_group_leaf(), min_size=1, max_size=3, unique_by=_name)))

INPUTS = st.recursive(st.one_of(_plain(), KEYED), lambda kids: st.one_of(
    st.builds(lambda ks: CrossInput(tuple(ks)), st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda ks: UnionInput(tuple(ks)), st.lists(kids, min_size=1, max_size=3))), max_leaves=4)


def _changes(old_lst, new_lst):
    def changes(leaf):
        old = {p: h for p, h, _ in old_lst(leaf)}
        new = new_lst(leaf)
        new_paths = {e[0] for e in new}
        return [e for e in new if old.get(e[0]) != e[1]], [p for p in old if p not in new_paths]
    return changes


def _members(index: dict):
    keys = sorted(index)

    def old_members(pos, key):
        lo, hi = member_range(pos, key)
        out: dict[int, list] = {}
        for k in keys:
            if lo <= k < hi:
                c, e = parse_member(k, index[k])
                out.setdefault(c, []).append(e)
        return out
    return old_members


def _commits(i):
    return {("default", r, "master"): f"commit{i}{r}" for r in REPOS}


def _check_history(inp, history):
    """Plan every step of the history from the previous step's key index and compare the
    result (and the carried key index) with full enumerations and a full classification."""
    lst = listing_for(history[0])
    index = dict(key_index_items(inp, lst))
    for i in range(1, len(history)):
        old_lst, new_lst = lst, listing_for(history[i])
        delta = plan_changes(inp, new_lst, old_lst, _changes(old_lst, new_lst), _commits(i), _commits(i - 1),
                             _members(index))
        old = enumerate_datums(inp, old_lst, _commits(i - 1))
        new = enumerate_datums(inp, new_lst, _commits(i))
        old_hash = {d.id: d.hash("s") for d in old}
        new_ids = {d.id for d in new}
        assert sorted(d.id for d in delta.dirty) == sorted({d.id for d in new if old_hash.get(d.id) != d.hash("s")})
        assert sorted(d.id for d in delta.gone) == sorted({i for i in old_hash if i not in new_ids})
        by_id = {d.id: d for d in new}
        for d in delta.dirty:  # what a worker gets: the very datum the full enumeration has
            assert d == by_id[d.id]
        # the same sets a full classification against a base that ran every old datum gives
        to_process, _skip, to_delete = classify(new, {d.id: (d.hash("s"), "success") for d in old}, "s")
        assert {d.id for d in to_process} == {d.id for d in delta.dirty}
        assert sorted(to_delete) == sorted(d.id for d in delta.gone)
        for k, v in delta.key_edits:
            if v is None:
                index.pop(k, None)
            else:
                index[k] = v
        assert index == dict(key_index_items(inp, new_lst))
        lst = new_lst


@given(INPUTS, HISTORY)
@settings(max_examples=200, deadline=None)
def test_planned_datums_equal_full_classification(inp, history):
    if not plannable(inp):  # only unions whose branches' datum ids can collide (next test)
        assert any(isinstance(n, UnionInput) for n in iter_inputs(inp))
        return
    _check_history(inp, history)


def test_a_union_whose_branch_ids_can_collide_is_classified_in_full():
    # found by the test above: /k1-a alone in group k1 has the same DatumID as the pfs datum
    # of /k1-a, so a plan per branch and a full classification disagree once /k1-b joins k1
    leaf = PfsInput(name="a", repo="a", glob="/*")
    grouped = PfsInput(name="a", repo="a", glob="/(*)-(*)", group_by="$1")
    renamed = replace(grouped, name="g")
    assert not plannable(UnionInput((leaf, CrossInput((GroupInput((grouped,)),)))))
    assert plannable(UnionInput((leaf, CrossInput((GroupInput((renamed,)),)))))
    assert plannable(UnionInput((leaf, replace(leaf, glob="/*/*"))))  # no join or group: ids are files


@given(st.lists(_join_leaf(), min_size=2, max_size=3, unique_by=_name), HISTORY)
@settings(max_examples=100, deadline=None)
def test_joins_with_outer_children(kids, history):
    _check_history(JoinInput(tuple(kids)), history)


@given(st.lists(_group_leaf(), min_size=1, max_size=3, unique_by=_name), HISTORY)
@settings(max_examples=100, deadline=None)
def test_groups(kids, history):
    _check_history(GroupInput(tuple(kids)), history)


def test_file_moving_between_groups_changes_both_groups():
    """Renaming /k1-b to /k2-b: group k1 loses a member (a new datum id), k2 gains one."""
    inp = GroupInput((P("a", "/(*)-(*)", group_by="$1"),))
    h0 = {"a": {"/k1-a": b"1", "/k1-b": b"2", "/k2-a": b"3", "/k3-c": b"4"}, "b": {}, "c": {}}
    h1 = {"a": {"/k1-a": b"1", "/k2-b": b"2", "/k2-a": b"3", "/k3-c": b"4"}, "b": {}, "c": {}}
    old_lst, new_lst = listing_for(h0), listing_for(h1)
    delta = plan_changes(inp, new_lst, old_lst, _changes(old_lst, new_lst), old_members=_members(
        dict(key_index_items(inp, old_lst))))
    assert sorted([f.path for f in d.inputs] for d in delta.dirty) == [["/k1-a"], ["/k2-a", "/k2-b"]]
    assert sorted([f.path for f in d.inputs] for d in delta.gone) == [["/k1-a", "/k1-b"], ["/k2-a"]]
    _check_history(inp, [h0, h1])


def test_join_adding_a_match_keeps_existing_pairs_skipped():
    """A second file for key k1 on one side adds one pair; the existing pair is unchanged."""
    inp = JoinInput((P("a", "/(*)-(*)", join_on="$1"), P("b", "/(*)-(*)", join_on="$1")))
    h0 = {"a": {"/k1-a": b"1"}, "b": {"/k1-b": b"2"}, "c": {}}
    h1 = {"a": {"/k1-a": b"1", "/k1-c": b"3"}, "b": {"/k1-b": b"2"}, "c": {}}
    old_lst, new_lst = listing_for(h0), listing_for(h1)
    delta = plan_changes(inp, new_lst, old_lst, _changes(old_lst, new_lst),
                         old_members=_members(dict(key_index_items(inp, old_lst))))
    assert [[f.path for f in d.inputs] for d in delta.dirty] == [["/k1-c", "/k1-b"]]
    assert delta.gone == []


def test_join_over_a_compound_child_is_not_planned():
    inp = JoinInput((CrossInput((P("a"), P("b"))), P("c", "/(*)", join_on="$1")))
    assert not plannable(inp)
    assert plan_changes(inp, listing_for({}), listing_for({}), lambda leaf: ([], [])) is None


def test_a_join_needs_the_old_key_index():
    inp = JoinInput((P("a", "/(*)", join_on="$1"),))
    with pytest.raises(ValueError, match="key index"):
        plan_changes(inp, listing_for({}), listing_for({}), lambda leaf: ([], []))


def test_key_index_values_are_hash_and_size():
    inp = GroupInput((P("a", "/(*)", group_by="$1"),))
    [(k, v)] = key_index_items(inp, listing_for({"a": {"/x": b"abc"}}))
    assert k == "0\x00x\x000000\x00/x"
    assert msgpack.unpackb(v)[1] == 3
