"""Pachyderm glob semantics (pfs.glob): documented examples, ohmyglob behaviour, properties."""
from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfs.errors import InvalidArgument
from pfs.glob import (
    clean_glob,
    compile_glob,
    expand_template,
    filter_paths,
    glob_literal_prefix,
    matches_root,
)


def m(pattern: str, s: str) -> bool:
    return compile_glob(pattern).match(s) is not None


# ---- cleaning ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw,clean",
    [
        ("", "/"),
        ("/", "/"),
        ("*", "/*"),
        ("/*", "/*"),
        ("/*/", "/*"),
        ("dir/*", "/dir/*"),
        ("//a//b/", "/a/b"),
        ("a/./b", "/a/b"),
        ("a/../b", "/b"),
        ("../x", "/x"),
        ("/**", "/**"),
    ],
)
def test_clean_glob(raw, clean):
    assert clean_glob(raw) == clean


def test_matches_root():
    assert matches_root("/")
    assert matches_root("")
    assert matches_root(compile_glob("/"))
    assert not matches_root("/*")
    assert not matches_root("/**")


# ---- PFS candidate paths (files and dirs) -----------------------------------------------
REPO = [
    "/",
    "/a.txt",
    "/b.png",
    "/c.jpg",
    "/d.JPG",
    "/frames/",
    "/frames/f1.jpg",
    "/frames/sub/",
    "/frames/sub/deep.txt",
    "/dir1/",
    "/dir1/x",
    "/dir2/",
    "/dir2/dir3/",
    "/dir2/dir3/file10",
    "/dir2/dir3/file1",
]


@pytest.mark.parametrize(
    "glob,expected",
    [
        ("/", ["/"]),
        ("/*", ["/a.txt", "/b.png", "/c.jpg", "/d.JPG", "/dir1/", "/dir2/", "/frames/"]),
        ("/*/", ["/a.txt", "/b.png", "/c.jpg", "/d.JPG", "/dir1/", "/dir2/", "/frames/"]),
        ("*", ["/a.txt", "/b.png", "/c.jpg", "/d.JPG", "/dir1/", "/dir2/", "/frames/"]),
        ("/*/*", ["/dir1/x", "/dir2/dir3/", "/frames/f1.jpg", "/frames/sub/"]),
        ("/*.{png,jpg,jpeg}", ["/b.png", "/c.jpg"]),
        ("/!(*.*)", ["/dir1/", "/dir2/", "/frames/"]),
        ("/dir1/*", ["/dir1/x"]),
        ("/d*", ["/d.JPG", "/dir1/", "/dir2/"]),
        ("dir2/dir3/file1?", ["/dir2/dir3/file10"]),
        ("/**.txt", ["/a.txt", "/frames/sub/deep.txt"]),
        ("/**file1?", ["/dir2/dir3/file10"]),
    ],
)
def test_pfs_globs(glob, expected):
    assert filter_paths(glob, REPO) == sorted(expected)


def test_double_star_matches_every_path_but_root():
    # `/**` matches files AND directories at every depth (issue #3335), never the root.
    got = filter_paths("/**", REPO)
    assert got == sorted(p for p in REPO if p != "/")


def test_root_only_matches_slash():
    g = compile_glob("/")
    assert g.match_path("/") is not None
    assert g.match_path("/a.txt") is None
    for pat in ("/*", "/**", "**", "*"):
        assert compile_glob(clean_glob(pat)).match_path("/") is None


# ---- documented capture-group examples ----------------------------------------------------
DOC_PATH = "/foo/bar-123/ABC.txt"


@pytest.mark.parametrize(
    "glob,template,expected",
    [
        ("/(*)/*/*", "$1", "foo"),
        ("/*/bar-(*)/*", "$1", "123"),
        ("/(*)/*/(??)*.txt", "$1", "foo"),
        ("/(*)/*/(??)*.txt", "$2", "AB"),
        ("/*/(bar-(123))/*", "$1", "bar-123"),
        ("/*/(bar-(123))/*", "$2", "123"),
        ("/(*)/*/(??)*.txt", "$1$2", "fooAB"),
        ("/(*)/*/(??)*.txt", "${1}-${2}", "foo-AB"),
        ("/(*)/*/(??)*.txt", "$0", DOC_PATH),
        ("/(*)/*/(??)*.txt", "$9", ""),
        ("/(*)/*/(??)*.txt", "$$1", "$1"),
        ("/(*)/*/(??)*.txt", "cost: $", "cost: $"),
        ("/(*)/*/(??)*.txt", "${x}", "${x}"),
        ("/(*)/*/(??)*.txt", "${1", "${1"),
        ("/(*)/*/(??)*.txt", "constant", "constant"),
        ("/(*)/*/(??)*.txt", "$1x", "foox"),  # digits only, greedy
        ("/(*)/*/(??)*.txt", "$01", ""),  # leading zero: no such group
    ],
)
def test_doc_capture_examples(glob, template, expected):
    assert compile_glob(glob).replace(DOC_PATH, template) == expected


def test_replace_no_match_gives_empty_groups():
    g = compile_glob("/(*).txt")
    assert g.replace("/a/b.csv", "k-$1") == "k-"
    assert g.replace("/a/b.csv", "plain") == "plain"
    assert expand_template(None, "$1$$") == "$"


def test_replace_on_directory_trims_slash():
    assert compile_glob("/(*)").replace("/dir/", "$1") == "dir"


def test_join_style_capture():
    g = compile_glob("/(*).txt")
    assert g.replace("/1.txt", "$1") == "1"
    assert compile_glob("/(*)_(*).csv").replace("/a_b.csv", "$2/$1") == "b/a"


@pytest.mark.parametrize(
    "pattern,s,groups",
    [
        ("test/(a|b)/x.go", "test/a/x.go", ["a"]),
        ("test/a*(a|b)/x.go", "test/a/x.go", [""]),
        ("test/a*(a|b)/x.go", "test/aba/x.go", ["ba"]),
        ("test/+(a|b)/x.go", "test/aba/x.go", ["aba"]),
        ("test/a?(a|b)/x.go", "test/ab/x.go", ["b"]),
        ("test/@(a|b)/x.go", "test/b/x.go", ["b"]),
        ("test/(a|b)/(*).go", "test/a/x.go", ["a", "x"]),
        ("test/a*(a|b)/*(*).go", "test/aaaa/x.go", ["aaa", "x"]),
        ("test*(/?(+(a|b)/*.go))", "test/a/x.go", ["/a/x.go", "a/x.go", "a"]),
        ("{a,b}(*)", "bz", ["z"]),  # braces never capture
    ],
)
def test_capture_numbering(pattern, s, groups):
    mt = compile_glob(pattern).match(s)
    assert mt is not None
    assert [g or "" for g in mt.groups()] == groups


# ---- ohmyglob behaviour (separator `/`) ------------------------------------------------
CASES = [
    (True, "* ?at * eyes", "my cat has very bright eyes"),
    (True, "", ""),
    (False, "", "b"),
    (True, "*ä", "åä"),
    (True, "a*c", "a12345c"),
    (True, "a?c", "a1c"),
    (False, "?at", "at"),
    (True, "\\*", "*"),
    (False, "*", "a/b"),
    (True, "**", "a/b/c"),
    (False, "a/*", "a/b/c"),
    (True, "a/**", "a/b/c"),
    (False, "a/?/c", "a/bb/c"),
    (True, "a/?/?", "a/b/c"),
    (True, "**is**a***test*", "this is a test"),
    (False, "*is", "this is a test"),
    (True, "[!a]*", "this is a test3"),
    (True, "?*?", "ac"),
    (False, "sta?n", "stagnation"),
    (True, "{abc,abcd}a", "abcda"),
    (True, "{a,ab}{bc,f}", "abc"),
    (True, "{*,**}{a,b}", "ab"),
    (False, "{*,**}{a,b}", "ac"),
    (True, "[a-z]", "c"),
    (False, "[a-z]", "C"),
    (True, "[[:alpha:]]", "C"),
    (False, "[[:alpha:]]", "5"),
    (True, "[[:^alpha:]]", "."),
    (True, "[^[:alpha:]]", "."),
    (True, "[![:digit:]]", "x"),
    (True, "[[:space:]]", "\t"),
    (True, "[^a]", "b"),
    (False, "[^a]", "a"),
    (True, "/{rate,[0-9][0-9][0-9]}*", "/rate"),
    (True, "/{rate,[a-z][a-z][a-z]}*", "/usd"),
    (True, "*//{,*.}example.com", "https://www.example.com"),
    (False, "*//{,*.}example.com", "http://example.com.net"),
    # extglob
    (True, "*.(a|b)", "a.a.a"),
    (False, "*.(a|b)", "a.bb"),
    (True, "*.(a|b)*", "d.a.d"),
    (True, "?(a*|b)", "ax"),
    (True, "?@(a|b)*@(c)d", "abcd"),
    (True, "(*(a|b\\[)|f*)", "foo"),
    (False, "(a+|b)+", "abcdef"),
    (True, "(a|d).(a|b)*", "a.bb"),
    (True, "[!/][!/]/../", "ab/../"),
    (True, "[^/][^/]/../", "ab/../"),
    (True, "[a*\\(]*z", "abcz"),
    (False, "[a*\\(]*z", "abcx"),
    (True, "@(ab|+([!/]))/..?(/)", "ab/../"),
    (True, "@(ab|a*(b))*(c)d", "acd"),
    (True, "@(b+(c)d|e*(f)g?|?(h)i@(j|k))", "effgz"),
    (False, "@(b+(c)d|e+(f)g?|?(h)i@(j|k))", "egz"),
    (True, "@(foo|f|fo)*(f|of+(o))", "foofoofo"),
    (False, "*;[1-9]*([0-9])", "\"MS.FILE;13\""),
    (True, "*;[1-9]*([0-9])*", "\"MS.FILE;13\""),
    (True, "*;[1-9]**([0-9])*", "\"MS.FILE;13\""),
    (True, "*?(a)bc", "123abc"),
    (False, "*.+(b|d)", "a.a.a"),
    (True, "*.+(b|d)", "d.a.d"),
    (False, "*.c?(c)", "file.ccc"),
    (True, "*.c?(c)", "file.cc"),
    (False, "*(@(a))a@(c)", "baaac"),
    (True, "*(@(a))a@(c)", "aaac"),
    (True, "*(*(f)*(o))", "fffooofoooooffoofffooofff"),
    (False, "*(*(of*(o)x)o)", "ofoooxoofxoofoooxoofxofo"),
    (True, "*(*(of*(o)x)o)", "ofoooxoofxoofoooxoofxooofxofxo"),
    (True, "*(0|1|3|5|7|9)", ""),
    (False, "*(0|1|3|5|7|9)", "2468"),
    (False, "*(a|b\\[)", "*(a|b[)"),
    (True, "*(b+(c)d|e*(f)g?|?(h)i@(j|k))", "egzefffgzbcdij"),
    (False, "*(f*(o))", "xfoooofof"),
    (True, "*(f*(o))", "fooofoofofooo"),
    (False, "*(f*(o)x)", "foooxfooxofoxfooox"),
    (True, "*(fo|foo)", "fofoofoofofoo"),
    (True, "*(oxf+(ox))", "oxfoxoxfox"),
    (False, "*\\;[1-9]*([0-9])", "\"MS.FILE;13\""),
    (False, "+()c", "abc"),
    (True, "+([!/])/../", "ab/../"),
    (False, "+([0-7])", "09"),
    (True, "+([0-7])", "0377"),
    (True, "+(*)c", "abc"),
    (True, "+(a|b\\[)*", "b[c"),
    (False, "a??b", "aab"),
    (True, "a?(x)", "ax"),
    (False, "a?(x)", "ba"),
    (True, "a[b*(foo|bar)]d", "abd"),
    (False, "a[b*(foo|bar)]d", "acd"),
    (True, "a*?(x)", "ab"),
    (True, "a\\(*b", "a((((b"),
    (False, "a\\(*b", "ab"),
    (False, "a+(b|c)d", "abc"),
    (True, "ab?*(e|f)", "abcfef"),
    (False, "ab?*(e|f)", "abcfefg"),
    (True, "ab*(e|f)", "ab"),
    (False, "ab*(e|f)", "abcdef"),
    # `**(` is `*` followed by `*(`
    (True, "ab**(e|f)", "abab"),
    (True, "ab**(e|f)", "abcfef"),
    (False, "ab**(e|f)g", "abef"),
    (True, "ab**(e|f)g", "abcfefg"),
    (True, "ab***ef", "abcdef"),
    (False, "ab***ef", "abcfefg"),
    (True, "ab*+(e|f)", "abef"),
    (True, "ab*d+(e|f)", "abcdef"),
    (False, "ab*d+(e|f)", "abd"),
    (True, "para?([345]|99)1", "para991"),
    (False, "para?([345]|99)1", "para381"),
    (True, "para@(chute|graph)", "paragraph"),
    (False, "para*([0-9])", "paragraph"),
    (True, "para+([0-9])", "para987346523"),
    # negation
    (False, "!(*.js|*.json)", "a.js"),
    (True, "!(*.js|*.json)", "a.js.gz"),
    (True, "a*!(x)", "ab"),
    (False, "a*!(x)", "ba"),
    (True, "a!(x)", "a"),
    (False, "a!(x)", "ax"),
    (True, "!(x)", "foo"),
    (False, "!(x)", "foo/bar"),
    (True, "!(x)*", "foo"),
    (False, "!(foo)", "foo"),
    (True, "!(!(foo))", "foo"),
    (False, "!(!(!(foo)))", "foo"),
    (True, "!(!(!(!(foo))))", "foo"),
    (False, "!(foo)*", "foo"),
    (True, "!(foo)", "foobar"),
    (False, "!(foo)*", "foobar"),
    (False, "!(*.*).!(*.*)", "moo.cow"),
    (False, "mu!(*(c))?.pa!(*(z))?", "mucca.pazza"),
    (True, "*(!(f))", "fff"),
    (False, "+(!(f))", "f"),
    (True, "@(!(z*)|*x)", "foot"),
    (False, "@(!(z*)|*x)", "zoot"),
    (True, "@(!(z*)|*x)", "zoox"),
    (False, "*(!(foo))", "foo"),
    (False, "!(foo)b*", "foobb"),
    (True, "*.!(js|css)", "bar.min.js"),
    (False, "!*.+(js|css)", "bar.min.js"),
    (True, "*(*.json|!(*.js))", "other.bar"),
    (False, "!(*(*.json|!(*.js)))*", "other.bar"),
    (False, "*.!(js)*.!(xy)", "asd.js.xyz"),
    (False, "*.!(js).!(xyz)*", "asd.js.xyz"),
    (True, "*.!(j)", "a-integration-test.js"),
    (False, "*.!(js)", "a-integration-test.js"),
    (True, "*-!(integration-)test.js", "a-integration-test.js"),
    (False, "*-!(integration)-test.js", "a-integration-test.js"),
    (True, "*!(-integration)-test.js", "a-integration-test.js"),
    (False, "*-integr!(ation)-test.js", "a-integration-test.js"),
    (True, "*te!(gration-te)st.js", "a-integration-test.js"),
    (False, "*-!(integration)?test.js", "a-integration-test.js"),
    (True, "*?!(integration)?test.js", "a-integration-test.js"),
    (True, "*!(.js.js)*", "foo.js.js"),
    (False, "*(.js.js)", "foo.js.js"),
    (True, "**(.js.js)", "foo.js.js"),
    (False, "*.!(js)*.!(js)", "foo.js.js"),
    (True, "!(*(.js.js))", "foo.js.js"),
    (True, "*.!(js)", "foo.js.js"),
    (False, "*.!(js)*", "foo.js.js"),
    (True, "*/**(.*)", "a/foo.js.js"),
    (True, "a/f*(!(.js.js))", "a/foo.js.js"),
    (True, "a/!(+(.*))", "a/foo.js.js"),
    (False, "*(*.json|!(*.js))", "foojs.js"),
    (True, "*(*.json|!(*.js))*", "foojs.js"),
    (True, "!(*.a|*.b|*.c)", "a.abcd"),
    (False, "!(*.a|*.b|*.c)*", "a.abcd"),
    (True, "*.!(a|b|c)", "a.abcd"),
    (False, "!(*.*)", "a.b"),
    (False, "!(*.js)", "a.js.js"),
    (True, "\\\\$..!(!())", "\\$.."),
    # `^(` is a negation like `!(`; bare `!`, `^`, `@`, `+` are text
    (False, "^(foo)", "foo"),
    (True, "^(foo)", "bar"),
    (True, "a!b", "a!b"),
    (True, "a^b", "a^b"),
    (True, "a@b", "a@b"),
    (True, "a+b", "a+b"),
    (True, "a+b", "a+b"),
    (True, "a)b|c", "a)b|c"),
    (True, "a,b}", "a,b}"),
    (True, "x(a|b", "xb"),  # unclosed capture closes at the end
    (True, "{a,b", "b"),
]


@pytest.mark.parametrize("should,pattern,s", CASES)
def test_ohmyglob_cases(should, pattern, s):
    assert m(pattern, s) is should, compile_glob(pattern).regex.pattern


def test_negated_class_can_match_separator():
    # ohmyglob compiles `[!a]` to `[^a]`, which also matches `/` (unlike `*` and `?`)
    assert m("/x[!a]y", "/x/y")
    assert not m("/x?y", "/x/y")


@pytest.mark.parametrize("pattern", ["[", "[]", "[a-z0-9]", "[z-a]", "[[:nope:]]", "[a-"])
def test_invalid_classes(pattern):
    with pytest.raises(InvalidArgument):
        compile_glob(pattern)


def test_literal_prefix():
    assert glob_literal_prefix("/dir/sub/*.txt") == "/dir/sub/"
    assert glob_literal_prefix("/a/b") == "/a/b"
    assert glob_literal_prefix("/a/!(x)") == "/a/"
    assert glob_literal_prefix("/a/@b") == "/a/"
    assert glob_literal_prefix("/a\\*") == "/a"
    assert compile_glob("/x/*").literal_prefix == "/x/"


# ---- properties -------------------------------------------------------------------------
NAME = st.text(alphabet="abcxyz.-_019", min_size=1, max_size=6)
PATH = st.lists(NAME, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
SIMPLE_SEG = st.lists(
    st.sampled_from(["a", "b", "x", ".", "*", "?", "[ab]", "[a-c]"]), min_size=1, max_size=4
).map("".join)
# no `**` and no negated class (both can match `/`): then a glob is segment-wise fnmatch
SIMPLE_GLOB = (
    st.lists(SIMPLE_SEG, min_size=1, max_size=3)
    .map(lambda s: "/" + "/".join(s))
    .filter(lambda g: "**" not in g)
)


@given(SIMPLE_GLOB, PATH)
@settings(max_examples=300, deadline=None)
def test_simple_globs_agree_with_segmentwise_fnmatch(glob, path):
    gsegs, psegs = glob[1:].split("/"), path[1:].split("/")
    expected = len(gsegs) == len(psegs) and all(
        fnmatch.fnmatchcase(p, g) for g, p in zip(gsegs, psegs)
    )
    assert (compile_glob(glob).match(path) is not None) is expected


@given(PATH)
@settings(max_examples=200, deadline=None)
def test_literal_glob_matches_only_itself(path):
    assert compile_glob(path).match(path) is not None
    assert compile_glob(path).match(path + "x") is None


@given(PATH)
@settings(max_examples=200, deadline=None)
def test_star_and_superstar_depth(path):
    depth = path.count("/")
    assert (compile_glob("/" + "/".join(["*"] * depth)).match(path) is not None)
    assert compile_glob("/**").match(path) is not None
    if depth > 1:
        assert compile_glob("/*").match(path) is None


@given(PATH, st.booleans())
@settings(max_examples=200, deadline=None)
def test_dirs_match_like_files(path, as_dir):
    g = compile_glob(clean_glob("/*/*"))
    cand = path + "/" if as_dir else path
    assert (g.match_path(cand) is not None) is (path.count("/") == 2)


@given(st.text(alphabet="ab/*?.{},", max_size=8))
@settings(max_examples=200, deadline=None)
def test_clean_glob_is_idempotent_and_canonical(raw):
    c = clean_glob(raw)
    assert clean_glob(c) == c
    assert c.startswith("/")
    assert c == "/" or not c.endswith("/")
    assert "//" not in c


@given(SIMPLE_GLOB, PATH)
@settings(max_examples=200, deadline=None)
def test_every_match_starts_with_literal_prefix(glob, path):
    g = compile_glob(glob)
    if g.match(path):
        assert path.startswith(g.literal_prefix)


@given(st.lists(NAME, min_size=1, max_size=3), st.text(alphabet="$12{}x", max_size=6))
@settings(max_examples=200, deadline=None)
def test_capture_everything_then_replace(parts, template):
    path = "/" + "/".join(parts)
    g = compile_glob("/" + "/".join(["(*)"] * len(parts)))
    got = g.replace(path, template)
    # reference expansion written independently with a regex over the template
    groups = [path] + parts

    def sub(mo: re.Match) -> str:
        if mo.group(0) == "$$":
            return "$"
        num = mo.group(1) or mo.group(2)
        if num is None:
            return "$"
        if len(num) > 1 and num[0] == "0":
            return ""
        n = int(num)
        return groups[n] if n < len(groups) else ""

    expected = re.sub(r"\$\$|\$\{(\d+)\}|\$(\d+)|\$", sub, template)
    assert got == expected
