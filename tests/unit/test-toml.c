/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "fs.h"
#include "toml.h"

/* Literals go in with sizeof, so that a NUL byte inside one is part of the input. */
#define OK(text) parse_ok_at(__LINE__, (text), sizeof(text) - 1)
#define BAD(text, line, what) parse_bad_at(__LINE__, (text), sizeof(text) - 1, (line), (what))

static TomlValue *parse_ok_at(int at, const char *text, size_t size) {
        TomlValue *v = NULL;
        char err[256];
        int r = toml_parse(text, size, &v, err, sizeof err);

        if (r < 0)
                fail_msg("test line %d: refused (%s): %s", at, strerror(-r), err);
        assert_non_null(v);
        assert_int_equal(toml_type(v), TOML_TABLE);
        return v;
}

/* Refused as bad input, with "line N: " first and what somewhere in the message. */
static void parse_bad_at(int at, const char *text, size_t size, unsigned line, const char *what) {
        TomlValue *v = NULL;
        char err[256], prefix[32];
        int r = toml_parse(text, size, &v, err, sizeof err);

        if (r != -EBADMSG)
                fail_msg("test line %d: expected -EBADMSG, got %d (%s)", at, r, r < 0 ? err : "accepted");
        assert_null(v);
        snprintf(prefix, sizeof prefix, "line %u: ", line);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what))
                fail_msg("test line %d: expected \"%s...%s\", got \"%s\"", at, prefix, what, err);
}

static const char *str_at(const TomlValue *t, const char *key) {
        const char *s = toml_string(toml_table_get(t, key));
        if (!s)
                fail_msg("no string '%s'", key);
        return s;
}

static int64_t int_at(const TomlValue *t, const char *key) {
        int64_t i;
        assert_int_equal(toml_integer(toml_table_get(t, key), &i), 0);
        return i;
}

static double float_at(const TomlValue *t, const char *key) {
        double f;
        assert_int_equal(toml_float(toml_table_get(t, key), &f), 0);
        return f;
}

static void test_comments_blank_lines_crlf(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("# leading comment\n"
                                                "\n"
                                                "   \t\n"
                                                "a = 1 # after a value\n"
                                                "b = \"# not a comment\"#tight\n"
                                                "[t] # after a header\n"
                                                "  # indented comment\n"
                                                "c = 'x'\n"
                                                "# comment at EOF without newline");
        _cleanup_(toml_freep) TomlValue *crlf = OK("a = 1\r\n\r\n[t]\r\nb = \"x\" # c\r\nc = \"\"\"l1\r\nl2\"\"\"\r\n");
        _cleanup_(toml_freep) TomlValue *empty = OK("");
        _cleanup_(toml_freep) TomlValue *bom = OK("\xef\xbb\xbf" "a = 1\n");

        (void) state;
        assert_int_equal(int_at(t, "a"), 1);
        assert_string_equal(str_at(t, "b"), "# not a comment");
        assert_string_equal(str_at(toml_table_get(t, "t"), "c"), "x");
        assert_int_equal(toml_table_size(t), 3);

        assert_int_equal(int_at(crlf, "a"), 1);
        assert_string_equal(str_at(toml_table_get(crlf, "t"), "b"), "x");
        assert_string_equal(str_at(toml_table_get(crlf, "t"), "c"), "l1\nl2"); /* CRLF inside normalized */
        assert_int_equal(toml_table_size(empty), 0);
        assert_int_equal(int_at(bom, "a"), 1);

        BAD("a = 1\n# bell \a in a comment\n", 2, "control character U+0007");
        BAD("a = 1\n\nb = 2\rc = 3\n", 3, "carriage return");
        BAD("a = 1\n#\x7f\n", 2, "U+007F");
        BAD("a = 1\n\xef\xbb\xbf" "b = 2\n", 2, "expected a key"); /* BOM only at the start */
}

static void test_table_headers(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("[a.b.\"quoted.part\".'literal']\n"
                                                "x = 1\n"
                                                "[ a . b . c ]\n"
                                                "y = 2\n"
                                                "[a]\n" /* explicit after implicit: fine */
                                                "z = 3\n"
                                                "[\"\"]\n"
                                                "e = 4\n");
        const TomlValue *lit = toml_get(t, "a", "b", "quoted.part", "literal", NULL);

        (void) state;
        assert_non_null(lit);
        assert_int_equal(int_at(lit, "x"), 1);
        assert_null(toml_get(t, "a", "b", "quoted", NULL));
        assert_int_equal(int_at(toml_get(t, "a", "b", "c", NULL), "y"), 2);
        assert_int_equal(int_at(toml_get(t, "a", NULL), "z"), 3);
        assert_int_equal(int_at(toml_get(t, "", NULL), "e"), 4);
        /* Keys in document order of first definition: a was created by the first header. */
        assert_string_equal(toml_table_key_at(t, 0), "a");
        assert_string_equal(toml_table_key_at(t, 1), "");
        assert_string_equal(toml_table_key_at(toml_get(t, "a", NULL), 0), "b");
        assert_string_equal(toml_table_key_at(toml_get(t, "a", NULL), 1), "z");

        BAD("[a]\nx = 1\n\n[a]\n", 4, "table 'a' is defined twice");
        BAD("[a.b]\n[a]\n[a]\n", 3, "defined twice");
        BAD("a = 1\n[a]\n", 2, "'a' is already an integer");
        BAD("[x]\na.b = 1\n[x.a]\n", 3, "table 'x.a' is already defined by dotted keys");
        BAD("a.b.c = 1\n[a.b]\n", 2, "already defined by dotted keys");
        BAD("a = 1\n[a.b]\n", 2, "'a' in 'a.b' is an integer and cannot be extended");
        BAD("[]\n", 1, "expected a key");
        BAD("[a.]\n", 1, "expected a key after '.'");
        BAD("\n[a\nb = 1\n", 2, "expected ']'");
        BAD("[a] b = 1\n", 1, "unexpected text after the table header");
        BAD("[a]]\n", 1, "unexpected text after the table header");
        BAD("[ [a] ]\n", 1, "expected a key");
        BAD("[\"\"\"a\"\"\"]\n", 1, "multi-line string cannot be a key");
}

static void test_array_of_tables(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("[[fruit]]\n"
                                                "name = \"apple\"\n"
                                                "[fruit.physical]\n"
                                                "color = \"red\"\n"
                                                "[[fruit.variety]]\n"
                                                "name = \"red delicious\"\n"
                                                "[[fruit.variety]]\n"
                                                "name = \"granny smith\"\n"
                                                "[[ fruit ]]\n"
                                                "name = \"banana\"\n"
                                                "[[fruit.variety]]\n"
                                                "name = \"plantain\"\n");
        const TomlValue *fruit = toml_table_get(t, "fruit");

        (void) state;
        assert_int_equal(toml_type(fruit), TOML_ARRAY);
        assert_int_equal(toml_array_size(fruit), 2);
        assert_string_equal(str_at(toml_array_at(fruit, 0), "name"), "apple");
        assert_string_equal(str_at(toml_get(toml_array_at(fruit, 0), "physical", NULL), "color"), "red");
        assert_int_equal(toml_array_size(toml_get(toml_array_at(fruit, 0), "variety", NULL)), 2);
        assert_string_equal(str_at(toml_array_at(toml_get(toml_array_at(fruit, 0), "variety", NULL), 1), "name"),
                            "granny smith");
        assert_string_equal(str_at(toml_array_at(fruit, 1), "name"), "banana");
        assert_int_equal(toml_array_size(toml_get(toml_array_at(fruit, 1), "variety", NULL)), 1);
        assert_null(toml_array_at(fruit, 2));
        /* toml_get does not look into arrays. */
        assert_null(toml_get(t, "fruit", "name", NULL));

        BAD("a = []\n[[a]]\n", 2, "'a' is already a static array, not an array of tables");
        BAD("a = [{b = 1}]\n[a.c]\n", 2, "static array and cannot be extended");
        BAD("[a]\n[[a]]\n", 2, "'a' is already a table, not an array of tables");
        BAD("[[a]]\n[a]\n", 2, "'a' is already an array");
        BAD("[[a]]\nb = 1\n\n[a.b]\n", 4, "'a.b' is already an integer");
        BAD("[[a]\n", 1, "expected ']]'");
        BAD("[[a]]\n[b]\nz = 1\n[a]\nx.y = 1\n", 4, "already an array");
        BAD("[[a.b]]\n[a]\nb.y = 2\n", 3, "'b' in 'b.y' is an array and cannot be extended");
}

static void test_keys(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("bare_key-1 = 1\n"
                                                "1234 = 2\n"
                                                "\"quoted.key \\u00e9\" = 3\n"
                                                "'C:\\lit' = 4\n"
                                                "\"\" = 5\n"
                                                "a.b.c = 6\n"
                                                "a.b.d = 7\n"
                                                "a . \"x.y\" . 'z' = 8\n"
                                                "3.14 = 9\n"
                                                "[tbl]\n"
                                                "p.q = 10\n"
                                                "[tbl.p.r]\n" /* a sub-table of a dotted table may get a header */
                                                "s = 11\n"
                                                "[imp.x.y]\n"
                                                "[imp]\n"
                                                "x.z = 12\n"); /* x was only implied by [imp.x.y] */

        (void) state;
        assert_int_equal(int_at(t, "bare_key-1"), 1);
        assert_int_equal(int_at(t, "1234"), 2);
        assert_int_equal(int_at(t, "quoted.key \xc3\xa9"), 3);
        assert_int_equal(int_at(t, "C:\\lit"), 4);
        assert_int_equal(int_at(t, ""), 5);
        assert_int_equal(int_at(toml_get(t, "a", "b", NULL), "c"), 6);
        assert_int_equal(int_at(toml_get(t, "a", "b", NULL), "d"), 7);
        assert_int_equal(int_at(toml_get(t, "a", "x.y", NULL), "z"), 8);
        assert_int_equal(int_at(toml_get(t, "3", NULL), "14"), 9);
        assert_int_equal(int_at(toml_get(t, "tbl", "p", NULL), "q"), 10);
        assert_int_equal(int_at(toml_get(t, "tbl", "p", "r", NULL), "s"), 11);
        assert_int_equal(toml_table_size(toml_get(t, "a", NULL)), 2);
        assert_int_equal(int_at(toml_get(t, "imp", "x", NULL), "z"), 12);

        BAD("a = 1\nb =\n", 2, "key 'b' has no value");
        BAD("a = 1\nb = # nothing\n", 2, "key 'b' has no value");
        BAD("a = 1\nb\n", 2, "expected '=' after key 'b'");
        BAD("a$b = 1\n", 1, "expected '=' after key 'a'");
        BAD("= 1\n", 1, "expected a key");
        BAD("a = 1\nb = 2\na = 3\n", 3, "duplicate key 'a'");
        BAD("a = 1\n\"a\" = 2\n", 2, "duplicate key '\"a\"'");
        BAD("a.b = 1\na.b = 2\n", 2, "duplicate key 'a.b'");
        BAD("a.b = 1\na = 2\n", 2, "duplicate key 'a'");
        BAD("a = 1\na.b = 2\n", 2, "is an integer and cannot be extended");
        BAD("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", 4, "table 'c' was defined by a [header]");
        BAD("[t]\na = 1\n[t.x]\n[t]\n", 4, "defined twice");
        BAD("[a.b.c]\n[a]\nb.x = 1\n[a.b]\n", 4, "table 'a.b' is already defined by dotted keys");
        BAD("a.\n", 1, "expected a key after '.'");
        BAD("\"\"\"k\"\"\" = 1\n", 1, "multi-line string cannot be a key");
}

static void test_basic_strings(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("esc = \"\\b\\t\\n\\f\\r\\\"\\\\\"\n"
                                                "u4 = \"\\u0041caf\\u00E9 \\u20ac\"\n"
                                                "u8 = \"\\U0001F600\"\n"
                                                "tab = \"a\tb\"\n"
                                                "utf8 = \"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"\n"
                                                "empty = \"\"\n");

        (void) state;
        assert_string_equal(str_at(t, "esc"), "\b\t\n\f\r\"\\");
        assert_string_equal(str_at(t, "u4"), "Acaf\xc3\xa9 \xe2\x82\xac");
        assert_string_equal(str_at(t, "u8"), "\xf0\x9f\x98\x80");
        assert_string_equal(str_at(t, "tab"), "a\tb");
        assert_string_equal(str_at(t, "utf8"), "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
        assert_string_equal(str_at(t, "empty"), "");

        BAD("a = 1\ns = \"\\x41\"\n", 2, "invalid escape");
        BAD("s = \"\\e\"\n", 1, "invalid escape");
        BAD("s = \"\\ \"\n", 1, "invalid escape");
        BAD("s = \"\\uD800\"\n", 1, "not a Unicode scalar value");
        BAD("s = \"\\uDFFF\"\n", 1, "not a Unicode scalar value");
        BAD("s = \"\\U00110000\"\n", 1, "not a Unicode scalar value");
        BAD("s = \"\\u0000\"\n", 1, "\\u0000 is not allowed");
        BAD("s = \"\\u12\"\n", 1, "needs 4 hex digits");
        BAD("s = \"\\U1234567\"\n", 1, "needs 8 hex digits");
        BAD("a = 1\ns = \"no end\n", 2, "unterminated string");
        BAD("a = 1\ns = \"no end", 2, "unterminated string");
        BAD("s = \"a\x01" "b\"\n", 1, "control character U+0001");
        BAD("s = \"a\x1f\"\n", 1, "control character U+001F");
        BAD("s = \"a\" \"b\"\n", 1, "unexpected text after the value");
}

static void test_literal_strings(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("path = 'C:\\Users\\nodejs\\templates'\n"
                                                "quoted = 'Tom \"Dubs\" Preston'\n"
                                                "regex = '<\\i\\c*\\s*>'\n"
                                                "empty = ''\n");

        (void) state;
        assert_string_equal(str_at(t, "path"), "C:\\Users\\nodejs\\templates");
        assert_string_equal(str_at(t, "quoted"), "Tom \"Dubs\" Preston");
        assert_string_equal(str_at(t, "regex"), "<\\i\\c*\\s*>");
        assert_string_equal(str_at(t, "empty"), "");

        BAD("a = 'x\nb = 1\n", 1, "unterminated string");
        BAD("a = 'it's'\n", 1, "unexpected text after the value");
        BAD("a = 'x\x7f'\n", 1, "control character");
}

static void test_multiline_strings(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("a = \"\"\"\nRoses are red\nViolets are blue\"\"\"\n"
                                                "b = \"\"\"\\\n    The quick brown \\\n\n\n    fox.\\\n    \"\"\"\n"
                                                "c = \"\"\"Here are two quotes: \"\". Simple.\"\"\"\n"
                                                "d = \"\"\"\"one quote at both ends\"\"\"\"\n"
                                                "e = \"\"\"\"\"two\"\"\"\"\"\n"
                                                "f = '''\nThe first newline is\ntrimmed in raw strings \\n.\n'''\n"
                                                "g = ''''That,' she said, 'is still pointless.''''\n"
                                                "h = \"\"\"tab\t\\u00e9 \\\\ \\\"\"\"\"\n"
                                                "i = \"\"\"\"\"\"\n"
                                                "j = 1\n");

        (void) state;
        assert_string_equal(str_at(t, "a"), "Roses are red\nViolets are blue");
        assert_string_equal(str_at(t, "b"), "The quick brown fox.");
        assert_string_equal(str_at(t, "c"), "Here are two quotes: \"\". Simple.");
        assert_string_equal(str_at(t, "d"), "\"one quote at both ends\"");
        assert_string_equal(str_at(t, "e"), "\"\"two\"\"");
        assert_string_equal(str_at(t, "f"), "The first newline is\ntrimmed in raw strings \\n.\n");
        assert_string_equal(str_at(t, "g"), "'That,' she said, 'is still pointless.'");
        assert_string_equal(str_at(t, "h"), "tab\t\xc3\xa9 \\ \"");
        assert_string_equal(str_at(t, "i"), "");
        assert_int_equal(int_at(t, "j"), 1); /* line counting survived */

        BAD("a = 1\nb = \"\"\"never\nclosed\n", 2, "unterminated string");
        BAD("a = 1\nb = '''never\nclosed\n", 2, "unterminated string");
        BAD("a = \"\"\"x\"\"\"\"\"\"\n", 1, "too many quotes");
        BAD("a = '''x''''''\n", 1, "too many quotes");
        BAD("a = \"\"\"\nx \\ y\"\"\"\n", 2, "invalid escape");
        BAD("a = \"\"\"\n\n\\q\"\"\"\n", 3, "invalid escape");
        BAD("a = \"\"\"ok\"\"\" junk\n", 1, "unexpected text after the value");
        BAD("a = \"\"\"\n\x01\"\"\"\n", 2, "control character");
}

static void test_integers(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("a = 0\nb = +99\nc = -17\nd = 1_000_000\ne = 0xDEAD_beef\n"
                                                "f = 0o755\ng = 0b1101_0110\nh = 9223372036854775807\n"
                                                "i = -9223372036854775808\nj = +0\nk = -0\nl = 0x00ff\n"
                                                "m = 0x7fffffffffffffff\n");
        int64_t i;

        (void) state;
        assert_int_equal(int_at(t, "a"), 0);
        assert_int_equal(int_at(t, "b"), 99);
        assert_int_equal(int_at(t, "c"), -17);
        assert_int_equal(int_at(t, "d"), 1000000);
        assert_int_equal(int_at(t, "e"), 0xdeadbeef);
        assert_int_equal(int_at(t, "f"), 0755);
        assert_int_equal(int_at(t, "g"), 0xd6);
        assert_true(int_at(t, "h") == INT64_MAX);
        assert_true(int_at(t, "i") == INT64_MIN);
        assert_int_equal(int_at(t, "j"), 0);
        assert_int_equal(int_at(t, "k"), 0);
        assert_int_equal(int_at(t, "l"), 255);
        assert_true(int_at(t, "m") == INT64_MAX);
        assert_int_equal(toml_integer(toml_table_get(t, "nope"), &i), -EINVAL);

        BAD("a = 1\nb = 01\n", 2, "invalid value '01'");
        BAD("a = +01\n", 1, "invalid value");
        BAD("a = 1__0\n", 1, "invalid value");
        BAD("a = _1\n", 1, "invalid value");
        BAD("a = 1_\n", 1, "invalid value");
        BAD("a = 0x_1\n", 1, "invalid value");
        BAD("a = 0X1\n", 1, "invalid value");
        BAD("a = +0x1\n", 1, "invalid value");
        BAD("a = 0x\n", 1, "invalid value");
        BAD("a = 0b102\n", 1, "invalid value");
        BAD("a = 0o8\n", 1, "invalid value");
        BAD("a = 12abc\n", 1, "invalid value");
        BAD("a = 1\nb = 9223372036854775808\n", 2, "does not fit in 64 bits");
        BAD("a = -9223372036854775809\n", 1, "does not fit in 64 bits");
        BAD("a = 0x8000000000000000\n", 1, "does not fit in 64 bits");
        BAD("a = 99999999999999999999999\n", 1, "does not fit in 64 bits");
        BAD("a = 1 2\n", 1, "unexpected text after the value");
}

static void test_floats(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("a = 1.0\nb = -0.01\nc = 5e+22\nd = 1e06\ne = -2E-2\n"
                                                "f = 6.626e-34\ng = 224_617.445_991\nh = inf\ni = -inf\n"
                                                "j = +inf\nk = nan\nl = -nan\nm = -0.0\nn = 0e0\no = 1e-400\n");
        double f;

        (void) state;
        assert_true(float_at(t, "a") == 1.0);
        assert_true(float_at(t, "b") == -0.01);
        assert_true(float_at(t, "c") == 5e22);
        assert_true(float_at(t, "d") == 1e6);
        assert_true(float_at(t, "e") == -0.02);
        assert_true(float_at(t, "f") == 6.626e-34);
        assert_true(float_at(t, "g") == 224617.445991);
        assert_true(isinf(float_at(t, "h")) && float_at(t, "h") > 0);
        assert_true(isinf(float_at(t, "i")) && float_at(t, "i") < 0);
        assert_true(isinf(float_at(t, "j")) && float_at(t, "j") > 0);
        assert_true(isnan(float_at(t, "k")));
        assert_true(isnan(float_at(t, "l")));
        assert_true(float_at(t, "m") == 0.0 && signbit(float_at(t, "m")));
        assert_true(float_at(t, "n") == 0.0);
        assert_true(float_at(t, "o") == 0.0); /* underflow rounds to zero */
        /* An integer is not a float, and the other way round. */
        {
                _cleanup_(toml_freep) TomlValue *i = OK("i = 1\n");
                int64_t n;
                assert_int_equal(toml_float(toml_table_get(i, "i"), &f), -EINVAL);
                assert_int_equal(toml_integer(toml_table_get(t, "a"), &n), -EINVAL);
        }

        BAD("a = .7\n", 1, "invalid value");
        BAD("a = 7.\n", 1, "invalid value");
        BAD("a = 3.e+20\n", 1, "invalid value");
        BAD("a = 1e\n", 1, "invalid value");
        BAD("a = 01.5\n", 1, "invalid value");
        BAD("a = 1.5_\n", 1, "invalid value");
        BAD("a = 1._5\n", 1, "invalid value");
        BAD("a = 1e_5\n", 1, "invalid value");
        BAD("a = Inf\n", 1, "invalid value");
        BAD("a = nan2\n", 1, "invalid value");
        BAD("a = 1.0\nb = 1e400\n", 2, "out of range");
        BAD("a = -1.7e309\n", 1, "out of range");
}

static void test_booleans(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("t = true\nf = false\narr = [true,false]\n");
        bool b = false;
        int64_t i;

        (void) state;
        assert_int_equal(toml_boolean(toml_table_get(t, "t"), &b), 0);
        assert_true(b);
        assert_int_equal(toml_boolean(toml_table_get(t, "f"), &b), 0);
        assert_false(b);
        assert_int_equal(toml_boolean(toml_array_at(toml_table_get(t, "arr"), 0), &b), 0);
        assert_true(b);
        assert_int_equal(toml_integer(toml_table_get(t, "t"), &i), -EINVAL);
        assert_null(toml_string(toml_table_get(t, "t")));

        BAD("a = True\n", 1, "invalid value 'True'");
        BAD("a = truex\n", 1, "invalid value");
        BAD("a = t\n", 1, "invalid value");
        BAD("a = true false\n", 1, "unexpected text after the value");
}

static void test_datetimes(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("odt1 = 1979-05-27T07:32:00Z\n"
                                                "odt2 = 1979-05-27T00:32:00-07:00\n"
                                                "odt3 = 1979-05-27T00:32:00.999999+05:30\n"
                                                "odt4 = 1979-05-27 07:32:00Z # space separator\n"
                                                "odt5 = 1979-05-27t07:32:00z\n"
                                                "ldt = 1979-05-27T07:32:00.5\n"
                                                "ld = 2024-02-29\n"
                                                "lt = 23:59:60.25\n"
                                                "arr = [1979-05-27, 07:32:00]\n");

        (void) state;
        assert_int_equal(toml_type(toml_table_get(t, "odt1")), TOML_DATETIME);
        assert_null(toml_string(toml_table_get(t, "odt1")));
        assert_string_equal(toml_datetime(toml_table_get(t, "odt1")), "1979-05-27T07:32:00Z");
        assert_string_equal(toml_datetime(toml_table_get(t, "odt2")), "1979-05-27T00:32:00-07:00");
        assert_string_equal(toml_datetime(toml_table_get(t, "odt3")), "1979-05-27T00:32:00.999999+05:30");
        assert_string_equal(toml_datetime(toml_table_get(t, "odt4")), "1979-05-27 07:32:00Z");
        assert_string_equal(toml_datetime(toml_table_get(t, "odt5")), "1979-05-27t07:32:00z");
        assert_string_equal(toml_datetime(toml_table_get(t, "ldt")), "1979-05-27T07:32:00.5");
        assert_string_equal(toml_datetime(toml_table_get(t, "ld")), "2024-02-29");
        assert_string_equal(toml_datetime(toml_table_get(t, "lt")), "23:59:60.25");
        assert_string_equal(toml_datetime(toml_array_at(toml_table_get(t, "arr"), 1)), "07:32:00");
        assert_null(toml_datetime(toml_table_get(t, "arr")));

        BAD("a = 1979-13-01\n", 1, "invalid value '1979-13-01'");
        BAD("a = 1979-02-30\n", 1, "invalid value");
        BAD("a = 2023-02-29\n", 1, "invalid value");
        BAD("a = 1979-05-27T25:00:00Z\n", 1, "invalid value");
        BAD("a = 07:32\n", 1, "invalid value"); /* TOML 1.0 wants seconds */
        BAD("a = 1979-05-27T07:32:00+7:00\n", 1, "invalid value");
        BAD("a = 1979-05-27T07:32:00.\n", 1, "invalid value");
        BAD("a = 1979-5-27\n", 1, "invalid value");
        BAD("a = 1979-05-27 junk\n", 1, "unexpected text after the value");
}

static void test_arrays(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("empty = []\n"
                                                "ints = [ 1, 2, 3, ]\n"
                                                "mixed = [1, 'two', 3.0, [4], {five = 5}, true, 1979-05-27]\n"
                                                "nested = [[1, 2], [[3]], []]\n"
                                                "multi = [\n"
                                                "  \"a]\", # a comment\n"
                                                "  # another\n"
                                                "\n"
                                                "  'b,c'\n"
                                                "  ,\n"
                                                "]\n"
                                                "after = 1\n");
        const TomlValue *mixed = toml_table_get(t, "mixed"), *nested = toml_table_get(t, "nested");

        (void) state;
        assert_int_equal(toml_type(toml_table_get(t, "empty")), TOML_ARRAY);
        assert_int_equal(toml_array_size(toml_table_get(t, "empty")), 0);
        assert_int_equal(toml_array_size(toml_table_get(t, "ints")), 3);
        assert_int_equal(toml_array_size(mixed), 7);
        assert_int_equal(toml_type(toml_array_at(mixed, 0)), TOML_INTEGER);
        assert_string_equal(toml_string(toml_array_at(mixed, 1)), "two");
        assert_int_equal(toml_type(toml_array_at(mixed, 2)), TOML_FLOAT);
        assert_int_equal(toml_type(toml_array_at(mixed, 3)), TOML_ARRAY);
        assert_int_equal(int_at(toml_array_at(mixed, 4), "five"), 5);
        assert_int_equal(toml_type(toml_array_at(mixed, 5)), TOML_BOOLEAN);
        assert_int_equal(toml_type(toml_array_at(mixed, 6)), TOML_DATETIME);
        assert_int_equal(toml_array_size(toml_array_at(nested, 1)), 1);
        assert_int_equal(toml_array_size(toml_array_at(toml_array_at(nested, 1), 0)), 1);
        assert_int_equal(toml_array_size(toml_array_at(nested, 2)), 0);
        assert_string_equal(toml_string(toml_array_at(toml_table_get(t, "multi"), 0)), "a]");
        assert_string_equal(toml_string(toml_array_at(toml_table_get(t, "multi"), 1)), "b,c");
        assert_int_equal(toml_array_size(toml_table_get(t, "multi")), 2);
        assert_int_equal(int_at(t, "after"), 1);
        assert_int_equal(toml_array_size(t), 0);
        assert_int_equal(toml_table_size(toml_table_get(t, "ints")), 0);

        BAD("a = 1\nb = [1, 2,\n3\n\n", 2, "unterminated array");
        BAD("a = [1, 2", 1, "unterminated array");
        BAD("a = [1 2]\n", 1, "expected ',' or ']' in array");
        BAD("a = [\n1\n2]\n", 3, "expected ',' or ']' in array");
        BAD("a = [,]\n", 1, "expected a value");
        BAD("a = [1,,2]\n", 1, "expected a value");
        BAD("a = [1] 2\n", 1, "unexpected text after the value");
        BAD("a = [1]\na = [2]\n", 2, "duplicate key 'a'");
}

static void test_inline_tables(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("a = { x = 1, b.c = \"x\", b.d = 2 }\n"
                                                "empty = {}\n"
                                                "spaced = {   }\n"
                                                "nested = { inner = { deep = [1, { y = 2 }] } }\n"
                                                "multi = { arr = [\n  1,\n  2\n] }\n"
                                                "next = 3\n");

        (void) state;
        assert_int_equal(int_at(toml_table_get(t, "a"), "x"), 1);
        assert_string_equal(str_at(toml_get(t, "a", "b", NULL), "c"), "x");
        assert_int_equal(int_at(toml_get(t, "a", "b", NULL), "d"), 2);
        assert_int_equal(toml_table_size(toml_table_get(t, "empty")), 0);
        assert_int_equal(toml_table_size(toml_table_get(t, "spaced")), 0);
        assert_int_equal(int_at(toml_array_at(toml_get(t, "nested", "inner", "deep", NULL), 1), "y"), 2);
        assert_int_equal(toml_array_size(toml_get(t, "multi", "arr", NULL)), 2);
        assert_int_equal(int_at(t, "next"), 3);

        /* Immutable once closed. */
        BAD("a = { b = 1 }\n[a]\n", 2, "'a' is already an inline table");
        BAD("a = { b = 1 }\na.c = 2\n", 2, "'a' in 'a.c' is an inline table and cannot be extended");
        BAD("a = { b = {} }\n[a.b]\n", 2, "inline table and cannot be extended");
        BAD("a = { b = {} }\n[a.b.c]\n", 2, "inline table and cannot be extended");
        BAD("a = { b = 1 }\n[[a.c]]\n", 2, "inline table and cannot be extended");
        BAD("a = { b = { c = 1 }, b.d = 2 }\n", 1, "'b' in 'b.d' is an inline table");
        BAD("a = { k = 1, k.n = 2 }\n", 1, "is an integer and cannot be extended");
        BAD("a = { b = 1, b = 2 }\n", 1, "duplicate key 'b'");
        /* One line, no trailing comma, closed. */
        BAD("a = 1\nb = { c = 1,\n d = 2 }\n", 2, "unterminated inline table");
        BAD("b = {\n}\n", 1, "unterminated inline table");
        BAD("b = { c = 1, }\n", 1, "trailing comma in inline table");
        BAD("b = { , }\n", 1, "expected a key");
        BAD("b = { c = 1 d = 2 }\n", 1, "expected ',' or '}' in inline table");
        BAD("b = { c = 1", 1, "unterminated inline table");
        BAD("b = { c }\n", 1, "expected '=' after key 'c'");
        BAD("b = { c = }\n", 1, "key 'c' has no value");
        BAD("b = { c = 1 } # fine\nd = { e = 1 } x\n", 2, "unexpected text after the value");
}

static void test_utf8(void **state) {
        static const char nul[] = "a = \"x\0y\"\n";
        _cleanup_(toml_freep) TomlValue *t = OK("# kommentar: gr\xc3\xbc\xc3\x9f\xe2\x82\xac\n"
                                                "\"schl\xc3\xbc\xc3\x9f" "el\" = '\xf4\x8f\xbf\xbf'\n");
        TomlValue *v = NULL;
        char err[64];

        (void) state;
        assert_string_equal(str_at(t, "schl\xc3\xbc\xc3\x9f" "el"), "\xf4\x8f\xbf\xbf");

        assert_int_equal(toml_parse(nul, sizeof nul - 1, &v, err, sizeof err), -EBADMSG);
        assert_string_equal(err, "line 1: NUL byte");
        BAD("a = 1\n\0", 2, "NUL byte");
        BAD("a = 1\n# \xc0\x80 overlong\n", 2, "invalid UTF-8");
        BAD("a = 1\nb = 2\ns = '\x80'\n", 3, "invalid UTF-8");
        BAD("s = \"\xed\xa0\x80\"\n", 1, "invalid UTF-8"); /* an encoded surrogate */
        BAD("s = \"\xf4\x90\x80\x80\"\n", 1, "invalid UTF-8"); /* above U+10FFFF */
        BAD("s = \"\xf5\x80\x80\x80\"\n", 1, "invalid UTF-8");
        BAD("s = \"\xe2\x82\"\n", 1, "invalid UTF-8");
        BAD("a = 1\n\n# truncated \xe2\x82", 3, "invalid UTF-8");
        BAD("\xff = 1\n", 1, "invalid UTF-8");
}

static void test_nesting_depth(void **state) {
        char buf[512];
        size_t n;

        (void) state;
        /* A key's value is one level below it; TOML_DEPTH_MAX arrays fit, one more does not. */
        n = (size_t) snprintf(buf, sizeof buf, "a = ");
        for (int i = 0; i < TOML_DEPTH_MAX - 1; i++)
                buf[n++] = '[';
        for (int i = 0; i < TOML_DEPTH_MAX - 1; i++)
                buf[n++] = ']';
        buf[n] = 0;
        {
                _cleanup_(toml_freep) TomlValue *t = parse_ok_at(__LINE__, buf, n);
                const TomlValue *v = toml_table_get(t, "a");
                for (int i = 0; i < TOML_DEPTH_MAX - 2; i++)
                        v = toml_array_at(v, 0);
                assert_int_equal(toml_type(v), TOML_ARRAY);
                assert_int_equal(toml_array_size(v), 0);
        }
        n = (size_t) snprintf(buf, sizeof buf, "\n\na = ");
        for (int i = 0; i < TOML_DEPTH_MAX + 1; i++)
                buf[n++] = '[';
        parse_bad_at(__LINE__, buf, n, 3, "nested deeper than 64 levels");

        n = (size_t) snprintf(buf, sizeof buf, "a = ");
        for (int i = 0; i < 100; i++)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "{b=");
        parse_bad_at(__LINE__, buf, n, 1, "nested deeper than 64 levels");

        /* Dotted keys inside inline tables count too. */
        n = (size_t) snprintf(buf, sizeof buf, "a = ");
        for (int i = 0; i < 12; i++)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "{b.c.d.e.f.g.h=");
        parse_bad_at(__LINE__, buf, n, 1, "nested deeper than 64 levels");

        n = 0;
        buf[n++] = '[';
        for (int i = 0; i < TOML_DEPTH_MAX + 1; i++)
                n += (size_t) snprintf(buf + n, sizeof buf - n, "%sk", i ? "." : "");
        buf[n++] = ']';
        parse_bad_at(__LINE__, buf, n, 1, "key with more than 64 parts");
}

static void test_input_limits_and_errors(void **state) {
        static const char unterminated[5] = { 'a', ' ', '=', ' ', '7' };
        _cleanup_free_ char *big = malloc(TOML_SIZE_MAX + 1);
        TomlValue *v = NULL;
        char err[64], tiny[10];
        int64_t i;

        (void) state;
        /* Not NUL-terminated: only size bytes are read. */
        assert_int_equal(toml_parse(unterminated, sizeof unterminated, &v, NULL, 0), 0);
        assert_int_equal(int_at(v, "a"), 7);
        v = toml_free(v);
        assert_int_equal(toml_parse(NULL, 0, &v, NULL, 0), 0);
        assert_int_equal(toml_table_size(v), 0);
        v = toml_free(v);

        assert_non_null(big);
        memset(big, '\n', TOML_SIZE_MAX + 1);
        assert_int_equal(toml_parse(big, TOML_SIZE_MAX + 1, &v, err, sizeof err), -EFBIG);
        assert_null(v);
        assert_int_equal(toml_parse(big, TOML_SIZE_MAX, &v, err, sizeof err), 0);
        v = toml_free(v);

        /* Messages are cut to fit, always terminated; no buffer is fine too. */
        assert_int_equal(toml_parse("a = 1\na = 2\n", 12, &v, tiny, sizeof tiny), -EBADMSG);
        assert_string_equal(tiny, "line 2: d");
        assert_int_equal(toml_parse("a = 1\na = 2\n", 12, &v, NULL, 0), -EBADMSG);
        tiny[0] = 'x';
        assert_int_equal(toml_parse("a =", 3, &v, tiny, 0), -EBADMSG);
        assert_int_equal(tiny[0], 'x');
        assert_null(v);

        /* Accessors take NULL and the wrong type. */
        assert_null(toml_free(NULL));
        assert_null(toml_table_get(NULL, "a"));
        assert_null(toml_get(NULL, "a", NULL));
        assert_int_equal(toml_table_size(NULL), 0);
        assert_null(toml_table_key_at(NULL, 0));
        assert_null(toml_table_value_at(NULL, 0));
        assert_int_equal(toml_array_size(NULL), 0);
        assert_null(toml_array_at(NULL, 0));
        assert_null(toml_string(NULL));
        assert_null(toml_datetime(NULL));
        assert_int_equal(toml_integer(NULL, &i), -EINVAL);
}

static void test_accessors(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("[b]\nx = 1\n[a.y]\n[b.z]\n[a]\nw = 's'\n[c]\n");
        const TomlValue *b = toml_table_get(t, "b");

        (void) state;
        assert_int_equal(toml_table_size(t), 3);
        assert_string_equal(toml_table_key_at(t, 0), "b");
        assert_string_equal(toml_table_key_at(t, 1), "a");
        assert_string_equal(toml_table_key_at(t, 2), "c");
        assert_null(toml_table_key_at(t, 3));
        assert_null(toml_table_value_at(t, 3));
        assert_ptr_equal(toml_table_value_at(t, 0), b);
        assert_string_equal(toml_table_key_at(b, 1), "z");
        assert_string_equal(toml_table_key_at(toml_table_get(t, "a"), 0), "y");
        assert_string_equal(toml_table_key_at(toml_table_get(t, "a"), 1), "w");
        assert_ptr_equal(toml_get(t, NULL), t);
        assert_ptr_equal(toml_get(t, "b", "z", NULL), toml_table_get(b, "z"));
        assert_null(toml_get(t, "b", "x", "deeper", NULL)); /* x is no table */
        assert_null(toml_get(t, "nope", "x", NULL));
        assert_null(toml_table_get(toml_table_get(b, "x"), "x"));
        assert_null(toml_table_get(t, NULL));
        assert_null(toml_string(toml_table_get(b, "x")));
}

/* Thousands of keys in one table, checked for order and for time: a parser that
 * scanned the table for each key would take seconds here. */
static void test_large_flat_table(void **state) {
        enum { N = 50000 };
        _cleanup_free_ char *text = malloc(N * 32);
        struct timespec a, b;
        size_t n = 0;
        char key[32];

        (void) state;
        assert_non_null(text);
        n += (size_t) sprintf(text, "[big]\n");
        for (int i = 0; i < N; i++)
                n += (size_t) sprintf(text + n, "key%d = %d\n", i, i);
        clock_gettime(CLOCK_MONOTONIC, &a);
        _cleanup_(toml_freep) TomlValue *t = parse_ok_at(__LINE__, text, n);
        clock_gettime(CLOCK_MONOTONIC, &b);
        const TomlValue *big = toml_table_get(t, "big");

        assert_int_equal(toml_table_size(big), N);
        for (int i = 0; i < N; i += 997) {
                snprintf(key, sizeof key, "key%d", i);
                assert_string_equal(toml_table_key_at(big, (size_t) i), key);
                assert_int_equal(int_at(big, key), i);
        }
        assert_null(toml_table_get(big, "key50000"));
        assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 3000);

        /* A duplicate is still found once the table has its index. */
        n += (size_t) sprintf(text + n, "key4711 = 1\n");
        parse_bad_at(__LINE__, text, n, N + 2, "duplicate key 'key4711'");
}

static TomlValue *parse_data_file(const char *name) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        TomlValue *t = NULL;
        char err[256];
        size_t size;
        int r;

        assert_true(asprintf(&path, "tests/data/%s", name) > 0);
        r = read_file_at(AT_FDCWD, path, true, TOML_SIZE_MAX, &text, &size);
        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        r = toml_parse(text, size, &t, err, sizeof err);
        if (r < 0)
                fail_msg("%s: %s", path, err);
        return t;
}

static void test_containerd_16_default(void **state) {
        _cleanup_(toml_freep) TomlValue *t = parse_data_file("containerd-1.6-default.toml");
        const TomlValue *cri = toml_get(t, "plugins", "io.containerd.grpc.v1.cri", NULL);
        const TomlValue *sp = toml_get(t, "stream_processors", "io.containerd.ocicrypt.decoder.v1.tar.gzip", NULL);

        (void) state;
        assert_int_equal(int_at(t, "version"), 2);
        assert_string_equal(toml_string(toml_get(cri, "registry", "config_path", NULL)), "");
        assert_string_equal(str_at(toml_get(cri, "containerd", "runtimes", "runc", NULL), "runtime_type"),
                            "io.containerd.runc.v2");
        assert_int_equal(toml_table_size(toml_get(cri, "registry", "mirrors", NULL)), 0);
        assert_true(float_at(toml_get(t, "plugins", "io.containerd.gc.v1.scheduler", NULL), "pause_threshold") == 0.02);
        assert_string_equal(str_at(toml_get(t, "timeouts", NULL), "io.containerd.timeout.shim.load"), "5s");
        assert_int_equal(toml_array_size(toml_table_get(sp, "args")), 2);
        assert_int_equal(toml_array_size(toml_table_get(t, "imports")), 0);
}

static void test_containerd_16_dump(void **state) {
        _cleanup_(toml_freep) TomlValue *t = parse_data_file("containerd-1.6-dump.toml");
        const TomlValue *cri = toml_get(t, "plugins", "io.containerd.grpc.v1.cri", NULL);
        const TomlValue *header = toml_get(cri, "registry", "headers", "X-Meta-Source", NULL);
        const TomlValue *runc = toml_get(cri, "containerd", "runtimes", "runc", NULL);
        bool b = true;

        (void) state;
        assert_string_equal(toml_string(toml_get(cri, "registry", "config_path", NULL)),
                            "/etc/containerd/certs.d:/etc/docker/certs.d");
        assert_string_equal(toml_string(toml_array_at(header, 0)), "nodetrust");
        assert_int_equal(toml_array_size(toml_table_get(t, "imports")), 2);
        /* containerd 1.6 let the import replace the whole CRI table. */
        assert_int_equal(toml_boolean(toml_get(runc, "options", "SystemdCgroup", NULL), &b), 0);
        assert_false(b);
}

static void test_containerd_2_default(void **state) {
        _cleanup_(toml_freep) TomlValue *t = parse_data_file("containerd-2-default.toml");
        const TomlValue *runtime = toml_get(t, "plugins", "io.containerd.cri.v1.runtime", NULL);

        (void) state;
        assert_int_equal(int_at(t, "version"), 3);
        assert_string_equal(
                toml_string(toml_get(t, "plugins", "io.containerd.cri.v1.images", "registry", "config_path", NULL)),
                "/etc/containerd/certs.d:/etc/docker/certs.d");
        assert_null(toml_get(t, "plugins", "io.containerd.grpc.v1.cri", "registry", NULL));
        assert_string_equal(str_at(toml_get(runtime, "containerd", "runtimes", "runc", NULL), "sandboxer"),
                            "podsandbox");
        assert_string_equal(toml_string(toml_array_at(toml_table_get(t, "imports"), 0)),
                            "/etc/containerd/conf.d/*.toml");
        assert_int_equal(toml_table_size(toml_get(t, "plugins", "io.containerd.internal.v1.tracing", NULL)), 0);
}

/* A hosts.toml in the layout containerd documents in docs/hosts.md. */
static void test_hosts_toml(void **state) {
        _cleanup_(toml_freep) TomlValue *t = OK("server = \"https://registry.example.com:5000\"\n"
                                                "\n"
                                                "[host.\"https://mirror.example.com\"]\n"
                                                "  capabilities = [\"pull\", \"resolve\"]\n"
                                                "  ca = [\"/etc/certs/mirror.pem\", \"/etc/certs/extra.pem\"]\n"
                                                "  skip_verify = false\n"
                                                "  client = [[\"/etc/certs/client.cert\", \"/etc/certs/client.key\"]]\n"
                                                "  [host.\"https://mirror.example.com\".header]\n"
                                                "    x-custom-1 = \"custom header\"\n"
                                                "\n"
                                                "[host.\"https://registry.example.com:5000\"]\n"
                                                "  ca = \"/etc/containerd/certs.d/registry:5000/ca.crt\"\n");
        const TomlValue *host = toml_table_get(t, "host");
        const TomlValue *mirror = toml_table_get(host, "https://mirror.example.com");
        bool b = true;

        (void) state;
        assert_string_equal(str_at(t, "server"), "https://registry.example.com:5000");
        assert_int_equal(toml_table_size(host), 2);
        assert_string_equal(toml_table_key_at(host, 0), "https://mirror.example.com");
        assert_int_equal(toml_array_size(toml_table_get(mirror, "ca")), 2);
        assert_int_equal(toml_boolean(toml_table_get(mirror, "skip_verify"), &b), 0);
        assert_false(b);
        assert_int_equal(toml_array_size(toml_array_at(toml_table_get(mirror, "client"), 0)), 2);
        assert_string_equal(toml_string(toml_get(mirror, "header", "x-custom-1", NULL)), "custom header");
        assert_string_equal(toml_string(toml_get(host, "https://registry.example.com:5000", "ca", NULL)),
                            "/etc/containerd/certs.d/registry:5000/ca.crt");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_comments_blank_lines_crlf),
                cmocka_unit_test(test_table_headers),
                cmocka_unit_test(test_array_of_tables),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_basic_strings),
                cmocka_unit_test(test_literal_strings),
                cmocka_unit_test(test_multiline_strings),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_floats),
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_datetimes),
                cmocka_unit_test(test_arrays),
                cmocka_unit_test(test_inline_tables),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_nesting_depth),
                cmocka_unit_test(test_input_limits_and_errors),
                cmocka_unit_test(test_accessors),
                cmocka_unit_test(test_large_flat_table),
                cmocka_unit_test(test_containerd_16_default),
                cmocka_unit_test(test_containerd_16_dump),
                cmocka_unit_test(test_containerd_2_default),
                cmocka_unit_test(test_hosts_toml),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
