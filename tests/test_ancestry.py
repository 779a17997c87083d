"""pfs.ancestry: ancestry syntax, name rules and path rules (server side)."""
import pytest
from hypothesis import given, strategies as st

from pfs.ancestry import (
    PROJECT_NAME_LIMIT,
    add_ancestry,
    clean_path,
    glob_literal_prefix,
    go_quote,
    has_ancestry,
    is_glob,
    parse_ancestry,
    parse_ancestry_raw,
    sanitize_name,
    validate_name,
    validate_path,
    validate_project_name,
    validate_repo_name,
)
from pfs.errors import InvalidArgument, InvalidName, InvalidPath

CID = "0123456789ab4def0123456789abcdef"


@pytest.mark.parametrize("ref,expected", [
    ("master", ("master", 0, None)),
    (CID, (CID, 0, None)),
    ("", ("", 0, None)),
    ("master^", ("master", 1, None)),
    ("master~", ("master", 1, None)),
    ("master^^^", ("master", 3, None)),
    ("master~~~", ("master", 3, None)),
    ("master^3", ("master", 3, None)),
    ("master~3", ("master", 3, None)),
    ("master^0", ("master", 0, None)),
    ("master^+2", ("master", 2, None)),
    ("master^03", ("master", 3, None)),
    ("master.1", ("master", None, 1)),
    ("master.2", ("master", None, 2)),
    ("master.-1", ("master", 1, None)),
    ("master^-2", ("master", None, 2)),
    (CID + "^2", (CID, 2, None)),
    (CID + "~", (CID, 1, None)),
    (CID + ".1", (CID, None, 1)),
    ("^", ("", 1, None)),
    ("master..", ("master", None, len("master..") + len("master"))),  # Go's arithmetic, verbatim
])
def test_parse_ancestry_table(ref, expected):
    assert parse_ancestry(ref) == expected


@pytest.mark.parametrize("ref,text", [
    ("master^~", 'invalid ancestry syntax "master^~", cannot mix ^ and ~ characters'),
    ("master~^", 'invalid ancestry syntax "master~^", cannot mix ~ and ^ characters'),
    ("master~whatever", 'invalid ancestry syntax "master~whatever", cannot mix ~ and w characters'),
    ("master^3^", 'invalid ancestry syntax "master^3^", cannot mix ^ and 3 characters'),
    ("master.x", 'invalid ancestry syntax "master.x", cannot mix . and x characters'),
    ("master^ 1", 'invalid ancestry syntax "master^ 1", cannot mix ^ and   characters'),
    ("master^1_0", 'invalid ancestry syntax "master^1_0", cannot mix ^ and 1 characters'),
])
def test_parse_ancestry_errors(ref, text):
    with pytest.raises(InvalidArgument) as e:
        parse_ancestry(ref)
    assert str(e.value) == text
    assert e.value.code == "INVALID_ARGUMENT"


def test_ancestry_int_overflow_is_not_a_number():
    with pytest.raises(InvalidArgument):
        parse_ancestry("master^" + "9" * 20)


def test_raw_matches_go_sign_convention():
    assert parse_ancestry_raw("foo^3") == ("foo", 3)
    assert parse_ancestry_raw("foo.3") == ("foo", -3)
    assert parse_ancestry_raw("foo") == ("foo", 0)


@pytest.mark.parametrize("base,n,text", [("foo", 3, "foo~3"), ("foo", -3, "foo.3"), ("foo", 0, "foo")])
def test_add_ancestry(base, n, text):
    assert add_ancestry(base, n) == text


@given(st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True), st.integers(-10**6, 10**6))
def test_add_parse_round_trip(base, n):
    got_base, back, from_start = parse_ancestry(add_ancestry(base, n))
    assert got_base == base
    assert (back if n >= 0 else -from_start) == n
    assert (back is None) != (from_start is None)


def test_has_ancestry():
    assert has_ancestry("master^") and has_ancestry("m.1") and not has_ancestry("master")


# ---- names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "repo", "Repo_1-x", "0", "-", "_x"])
def test_valid_names(name):
    validate_name(name)
    validate_repo_name(name)


@pytest.mark.parametrize("name", ["", "a.b", "a/b", "a b", "master^", "é", "a@b"])
def test_invalid_names(name):
    with pytest.raises(InvalidName) as e:
        validate_name(name)
    assert str(e.value) == (f"name ({name}) invalid: only alphanumeric characters, "
                            "underscores, and dashes are allowed")


def test_sanitize_name():
    assert sanitize_name("a.b/c d") == "a_b_c_d"
    validate_name(sanitize_name("weird name!"))


@pytest.mark.parametrize("name", ["default", "p", "proj-1", "P_2", "9lives", "a" * PROJECT_NAME_LIMIT])
def test_valid_projects(name):
    validate_project_name(name)


@pytest.mark.parametrize("name,text", [
    ("a" * 52, 'project name "' + "a" * 52 + '" is 1 characters longer than the 51 max'),
    ("a" * 60, 'project name "' + "a" * 60 + '" is 9 characters longer than the 51 max'),
    ("_proj", "project names must start with an alphanumeric character"),
    ("-proj", "project names must start with an alphanumeric character"),
    ("a.b", "name (a.b) invalid: only alphanumeric characters, underscores, and dashes are allowed"),
    ("", "name () invalid: only alphanumeric characters, underscores, and dashes are allowed"),
])
def test_invalid_projects(name, text):
    with pytest.raises(InvalidName) as e:
        validate_project_name(name)
    assert str(e.value) == text


def test_project_limit_is_51():
    assert PROJECT_NAME_LIMIT == 51


def test_go_quote():
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert go_quote("x\x01") == '"x\\x01"'
    assert go_quote("ünï") == '"ünï"'


# ---- paths -------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,clean", [
    ("", "/"), ("/", "/"), ("abc", "/abc"), ("/abc", "/abc"), ("abc/", "/abc"),
    ("//a//b//", "/a/b"), ("a/./b", "/a/b"), ("a/../b", "/b"), (".", "/"), ("/dir/file", "/dir/file"),
])
def test_clean_path(raw, clean):
    assert clean_path(raw) == clean


@given(st.text(alphabet="ab/.", max_size=12))
def test_clean_path_is_canonical(p):
    c = clean_path(p)
    assert c.startswith("/")
    assert c == "/" or not c.endswith("/")
    assert "//" not in c
    if not c.startswith("/.."):  # Go keeps a leading ".." that escapes the root: "/.."
        assert clean_path(c) == c


def test_clean_path_keeps_escaping_dotdot_like_go():
    assert clean_path("..") == "/.."
    assert clean_path("../a") == "/../a"


@pytest.mark.parametrize("p", ["/a", "a", "/a/b.txt", "/a b/c-d_e", "/~x", "/a..b", "/.hidden"])
def test_valid_paths(p):
    validate_path(p)


@pytest.mark.parametrize("p,text", [
    ("/a*", "path (/a*) invalid: globbing character (*) not allowed in path"),
    ("/a?b", "path (/a?b) invalid: globbing character (?) not allowed in path"),
    ("/[x]", "path (/[x]) invalid: globbing character ([) not allowed in path"),
    ("/x]", "path (/x]) invalid: globbing character (]) not allowed in path"),
    ("/{a}", "path (/{a}) invalid: globbing character ({) not allowed in path"),
    ("/a!", "path (/a!) invalid: globbing character (!) not allowed in path"),
    ("/(a)", "path (/(a)) invalid: globbing character (() not allowed in path"),
    ("/a@b", "path (/a@b) invalid: globbing character (@) not allowed in path"),
    ("/a+b", "path (/a+b) invalid: globbing character (+) not allowed in path"),
    ("/a^", "path (/a^) invalid: globbing character (^) not allowed in path"),
    ("/a/../b", "path (/a/../b) invalid: relative file paths are not allowed"),
    ("./a", "path (./a) invalid: relative file paths are not allowed"),
    ("/a/.", "path (/a/.) invalid: relative file paths are not allowed"),
    ("/é", "path (/é) invalid: only printable ASCII characters allowed"),
    ("/a\tb", "path (/a\tb) invalid: only printable ASCII characters allowed"),
    ("", "path () invalid: only printable ASCII characters allowed"),
])
def test_invalid_paths(p, text):
    with pytest.raises(InvalidPath) as e:
        validate_path(p)
    assert str(e.value) == text
    assert isinstance(e.value, InvalidArgument)


def test_glob_helpers():
    assert glob_literal_prefix("/dir/*/x") == "/dir/"
    assert glob_literal_prefix("/plain") == "/plain"
    assert is_glob("/a/*") and not is_glob("/a/b")
