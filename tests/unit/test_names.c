/*
 * Key <-> file name escaping (src/tool/names.c): every key has exactly one
 * name, every name at most one key, and names are what a file system and a
 * terminal can take: valid UTF-8, no '/', no NUL, no control bytes or C1
 * controls, no bidi overrides, not "." or "..", at most 255 bytes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* Escape a key given as a C string with explicit length. */
static const char *esc(const void *key, size_t len)
{
    static char out[NAME_MAX_BYTES + 1];
    key_to_name(key, len, out);
    return out;
}

/* Decode a name: returns the kind; the key goes to key and len. */
static enum name_kind dec(const char *name, uint8_t *key, size_t *len)
{
    uint64_t hash = 0;
    *len = (size_t)-1;
    return name_to_key(name, key, len, &hash);
}

static void assert_round_trip(const void *key, size_t len)
{
    char name[NAME_MAX_BYTES + 1];
    uint8_t back[NAME_MAX_BYTES + 1];
    size_t blen;
    key_to_name(key, len, name);
    ck_assert_msg(dec(name, back, &blen) == NAME_KEY, "'%s' does not decode",
                  name);
    ck_assert_uint_eq(blen, len);
    if (len)
        ck_assert_mem_eq(back, key, len);
}

/* Whether s is valid UTF-8 with no control byte, '/' or NUL. */
static int clean_name(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f || *p == '/')
            return 0;
        size_t n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : 2;
        if (*p >= 0x80 && *p < 0xC2)
            return 0;
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            return 0; /* a C1 control */
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

START_TEST(every_single_byte_round_trips)
{
    for (int b = 0; b < 256; b++) {
        uint8_t k = (uint8_t)b;
        const char *name = esc(&k, 1);
        int plain = b >= 0x20 && b < 0x7f && b != '/' && b != '%' && b != '.';
        if (plain) {
            ck_assert_uint_eq(strlen(name), 1);
            ck_assert_int_eq((unsigned char)name[0], b);
        } else {
            char want[4];
            snprintf(want, sizeof(want), "%%%02X", b);
            ck_assert_str_eq(name, want);
        }
        assert_round_trip(&k, 1);
    }
}
END_TEST

START_TEST(slash_percent_and_dots)
{
    ck_assert_str_eq(esc("/", 1), "%2F");
    ck_assert_str_eq(esc("%", 1), "%25");
    ck_assert_str_eq(esc("a/b%c", 5), "a%2Fb%25c");
    ck_assert_str_eq(esc(".", 1), "%2E");
    ck_assert_str_eq(esc("..", 2), "%2E%2E");
    /* Only the two names the kernel reserves are special. */
    ck_assert_str_eq(esc("...", 3), "...");
    ck_assert_str_eq(esc(".a", 2), ".a");
    ck_assert_str_eq(esc("a.", 2), "a.");
    ck_assert_str_eq(esc(".hidden", 7), ".hidden");
    const char *keys[] = {"/", "%", ".", "..", "...", ".a", "%2F", "a b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_round_trip(keys[i], strlen(keys[i]));
}
END_TEST

START_TEST(empty_key_is_percent)
{
    uint8_t back[8];
    size_t len;
    ck_assert_str_eq(esc("", 0), "%");
    ck_assert_int_eq(dec("%", back, &len), NAME_KEY);
    ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(control_bytes_and_nul)
{
    ck_assert_str_eq(esc("a\0b", 3), "a%00b");
    ck_assert_str_eq(esc("\t\n\r\x1b\x7f", 5), "%09%0A%0D%1B%7F");
    assert_round_trip("a\0b", 3);
    assert_round_trip("\0", 1);
}
END_TEST

START_TEST(invalid_utf8_is_escaped_bytewise)
{
    ck_assert_str_eq(esc("\xff", 1), "%FF");
    ck_assert_str_eq(esc("\x80", 1), "%80");            /* lone continuation */
    ck_assert_str_eq(esc("a\xc3", 2), "a%C3");           /* truncated */
    ck_assert_str_eq(esc("\xc3(", 2), "%C3(");           /* bad continuation */
    ck_assert_str_eq(esc("\xe2\x82", 2), "%E2%82");      /* truncated 3-byte */
    ck_assert_str_eq(esc("\xf8\x88\x80\x80\x80", 5), "%F8%88%80%80%80");
    ck_assert_str_eq(esc("\xf4\x90\x80\x80", 4), "%F4%90%80%80"); /* > U+10FFFF */
    const char *keys[] = {"\xff", "\x80", "a\xc3", "\xc3(", "\xe2\x82",
                          "\xfe\xff", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_round_trip(keys[i], strlen(keys[i]));
}
END_TEST

START_TEST(valid_multibyte_utf8_is_kept)
{
    ck_assert_str_eq(esc("caf\xc3\xa9", 5), "caf\xc3\xa9");          /* é */
    ck_assert_str_eq(esc("\xe2\x82\xac", 3), "\xe2\x82\xac");        /* € */
    ck_assert_str_eq(esc("\xf0\x9f\x98\x80", 4), "\xf0\x9f\x98\x80"); /* 😀 */
    ck_assert_str_eq(esc("\xf4\x8f\xbf\xbf", 4), "\xf4\x8f\xbf\xbf"); /* max */
    ck_assert_str_eq(esc("\xc2\xa0", 2), "\xc2\xa0");  /* no-break space */
    ck_assert_str_eq(esc("\xef\xbf\xbf", 3), "\xef\xbf\xbf");
    /* A valid sequence next to an invalid byte: only the byte is escaped. */
    ck_assert_str_eq(esc("\xc3\xa9\xff\xc3\xa9", 5), "\xc3\xa9%FF\xc3\xa9");
    assert_round_trip("caf\xc3\xa9", 5);
    assert_round_trip("\xf0\x9f\x98\x80", 4);
}
END_TEST

START_TEST(terminal_controls_and_bidi_are_escaped)
{
    /* C1 controls: U+0080, U+009B (CSI), U+009F. */
    ck_assert_str_eq(esc("\xc2\x80", 2), "%C2%80");
    ck_assert_str_eq(esc("a\xc2\x9b" "31mb", 7), "a%C2%9B31mb");
    ck_assert_str_eq(esc("\xc2\x9f", 2), "%C2%9F");
    ck_assert_str_eq(esc("\xc2\xa0", 2), "\xc2\xa0"); /* U+00A0 is kept */
    /* Bidi overrides and isolates: RLO U+202E, LRI U+2066, PDI U+2069. */
    ck_assert_str_eq(esc("x\xe2\x80\xaetxt.exe", 11), "x%E2%80%AEtxt.exe");
    ck_assert_str_eq(esc("\xe2\x81\xa6", 3), "%E2%81%A6");
    ck_assert_str_eq(esc("\xe2\x81\xa9", 3), "%E2%81%A9");
    ck_assert_str_eq(esc("\xe2\x80\xaa", 3), "%E2%80%AA"); /* LRE U+202A */
    ck_assert_str_eq(esc("\xe2\x80\x8f", 3), "%E2%80%8F"); /* RLM */
    ck_assert_str_eq(esc("\xe2\x80\xa8", 3), "%E2%80%A8"); /* LS */
    ck_assert_str_eq(esc("\xef\xbb\xbf", 3), "%EF%BB%BF"); /* BOM */
    ck_assert_str_eq(esc("\xd8\x9c", 2), "%D8%9C");         /* ALM */
    /* Joiners that emoji and scripts need stay. */
    ck_assert_str_eq(esc("\xe2\x80\x8d", 3), "\xe2\x80\x8d"); /* ZWJ */
    ck_assert_str_eq(esc("\xe2\x80\x8c", 3), "\xe2\x80\x8c"); /* ZWNJ */
    const char *keys[] = {"\xc2\x9b", "a\xe2\x80\xae" "b", "\xe2\x81\xa6" "x\xe2\x81\xa9",
                          "\xef\xbb\xbf"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_round_trip(keys[i], strlen(keys[i]));
    /* Canonical: the raw character is no name. */
    uint8_t back[16];
    size_t len;
    ck_assert_int_eq(dec("\xc2\x9b", back, &len), NAME_INVALID);
    ck_assert_int_eq(dec("\xe2\x80\xae", back, &len), NAME_INVALID);
    ck_assert_int_eq(dec("%C2%9B", back, &len), NAME_KEY);
    ck_assert_uint_eq(len, 2);
    /* Every code point: the invisible ones escape, the others do not. */
    for (uint32_t cp = 0x80; cp < 0x10000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char k[4];
        size_t n;
        if (cp < 0x800) {
            k[0] = (char)(0xC0 | cp >> 6);
            k[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else {
            k[0] = (char)(0xE0 | cp >> 12);
            k[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            k[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        }
        const char *name = esc(k, n);
        ck_assert_uint_eq(strlen(name), invisible_code_point(cp) ? 3 * n : n);
        assert_round_trip(k, n);
    }
}
END_TEST

START_TEST(overlong_and_surrogates_are_escaped)
{
    ck_assert_str_eq(esc("\xc0\xaf", 2), "%C0%AF");          /* overlong '/' */
    ck_assert_str_eq(esc("\xc1\xbf", 2), "%C1%BF");
    ck_assert_str_eq(esc("\xe0\x80\xaf", 3), "%E0%80%AF");
    ck_assert_str_eq(esc("\xf0\x80\x80\xaf", 4), "%F0%80%80%AF");
    ck_assert_str_eq(esc("\xed\xa0\x80", 3), "%ED%A0%80");   /* U+D800 */
    ck_assert_str_eq(esc("\xed\xbf\xbf", 3), "%ED%BF%BF");   /* U+DFFF */
    ck_assert_str_eq(esc("\xed\x9f\xbf", 3), "\xed\x9f\xbf"); /* U+D7FF ok */
    assert_round_trip("\xc0\xaf", 2);
    assert_round_trip("\xed\xa0\x80", 3);
}
END_TEST

START_TEST(only_canonical_names_decode)
{
    uint8_t back[NAME_MAX_BYTES + 1];
    size_t len;
    const char *bad[] = {
        "",          /* no name */
        "%2f",       /* lower-case hex */
        "%41",       /* 'A' needs no escape */
        "%2Ea",      /* ".a" needs no escape */
        "%2E%2E%2E", /* "..." needs no escape */
        "%%",        /* '%' must be followed by hex */
        "%4",        /* truncated escape */
        "a%",        /* truncated escape */
        "%G0",       /* not hex */
        "%C3%A9",    /* valid UTF-8 is not escaped */
        "a/b",       /* a raw '/' */
        "\xff",      /* a raw invalid byte */
        "\xc0\xaf",  /* a raw overlong sequence */
        "tab\there", /* a raw control byte */
        ".",         /* the reserved names themselves */
        "..",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(dec(bad[i], back, &len) == NAME_INVALID,
                      "'%s' should not decode", bad[i]);
    char toolong[NAME_MAX_BYTES + 2];
    memset(toolong, 'a', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = 0;
    ck_assert_int_eq(dec(toolong, back, &len), NAME_INVALID);
    ck_assert_int_eq(dec("%2E", back, &len), NAME_KEY);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(back[0], '.');
    ck_assert_int_eq(dec("%00", back, &len), NAME_KEY);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(back[0], 0);
}
END_TEST

START_TEST(long_names_are_shortened)
{
    uint8_t key[600], back[NAME_MAX_BYTES + 1];
    char name[NAME_MAX_BYTES + 1];
    size_t len;
    uint64_t hash = 0;

    /* 255 plain bytes fit; 256 do not. */
    memset(key, 'a', sizeof(key));
    key_to_name(key, 255, name);
    ck_assert_uint_eq(strlen(name), 255);
    ck_assert_ptr_null(strstr(name, "%#"));
    assert_round_trip(key, 255);
    key_to_name(key, 256, name);
    ck_assert_uint_le(strlen(name), NAME_MAX_BYTES);
    ck_assert_uint_eq(strlen(name), SHORT_PREFIX_BYTES + 2 + 16);
    ck_assert_int_eq(strncmp(name + SHORT_PREFIX_BYTES, "%#", 2), 0);
    ck_assert_int_eq(name_to_key(name, back, &len, &hash), NAME_SHORT);
    ck_assert_uint_eq(hash, key_name_hash(key, 256));
    ck_assert_uint_eq(len, SHORT_PREFIX_BYTES);
    ck_assert(short_name_matches(name, key, 256));
    ck_assert(!short_name_matches(name, key, 257));
    ck_assert(!short_name_matches(name, key, 255));

    /* Escapes are never cut: 100 control bytes escape to 300 chars. */
    memset(key, 0x01, 100);
    key_to_name(key, 100, name);
    char *mark = strstr(name, "%#");
    ck_assert_ptr_nonnull(mark);
    ck_assert_uint_eq((size_t)(mark - name) % 3, 0);
    ck_assert_uint_le((size_t)(mark - name), SHORT_PREFIX_BYTES);
    ck_assert(short_name_matches(name, key, 100));

    /* UTF-8 sequences are never cut: 2-byte 'é' from an odd offset. */
    key[0] = 'x';
    for (int i = 0; i < 150; i++) {
        key[1 + 2 * i] = 0xc3;
        key[2 + 2 * i] = 0xa9;
    }
    key_to_name(key, 301, name);
    mark = strstr(name, "%#");
    ck_assert_ptr_nonnull(mark);
    ck_assert_uint_eq((size_t)(mark - name) % 2, 1);
    ck_assert(clean_name(name));
    ck_assert(short_name_matches(name, key, 301));

    /* Two long keys with one prefix get different names. */
    char n2[NAME_MAX_BYTES + 1];
    memset(key, 'b', 400);
    key_to_name(key, 400, name);
    key[399] = 'c';
    key_to_name(key, 400, n2);
    ck_assert_str_ne(name, n2);
    ck_assert(!short_name_matches(name, key, 400));
    ck_assert(short_name_matches(n2, key, 400));
    /* A short form of a key whose full name fits is not its name. */
    ck_assert(!short_name_matches(name, key, 10));
}
END_TEST

START_TEST(random_keys_round_trip_to_clean_names)
{
    /* Keys drawn from the bytes that matter most: ASCII, '%', '/', '.',
     * NUL, UTF-8 leads and continuations, 0xFF. */
    static const uint8_t alphabet[] = {'a', 'Z', '0', ' ', '.', '%', '/', 0,
                                       '\n', 0x7f, 0x80, 0xa9, 0xbf, 0xc2,
                                       0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff,
                                       '#', '-'};
    uint64_t st = 42;
    uint8_t key[120];
    for (int n = 0; n < 20000; n++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(st >> 33) % sizeof(key);
        for (size_t i = 0; i < len; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            key[i] = alphabet[(st >> 33) % sizeof(alphabet)];
        }
        char name[NAME_MAX_BYTES + 1];
        key_to_name(key, len, name);
        if (!clean_name(name) || !strcmp(name, ".") || !strcmp(name, ".."))
            ck_abort_msg("key %d gives an unclean name '%s'", n, name);
        if (strstr(name, "%#")) {
            if (!short_name_matches(name, key, len))
                ck_abort_msg("short name of key %d does not match", n);
            continue;
        }
        uint8_t back[NAME_MAX_BYTES + 1];
        size_t blen;
        if (dec(name, back, &blen) != NAME_KEY || blen != len ||
            (len && memcmp(back, key, len) != 0))
            ck_abort_msg("key %d does not round-trip through '%s'", n, name);
    }
}
END_TEST

static Suite *names_suite(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, every_single_byte_round_trips);
    tcase_add_test(tc, slash_percent_and_dots);
    tcase_add_test(tc, empty_key_is_percent);
    tcase_add_test(tc, control_bytes_and_nul);
    tcase_add_test(tc, invalid_utf8_is_escaped_bytewise);
    tcase_add_test(tc, valid_multibyte_utf8_is_kept);
    tcase_add_test(tc, terminal_controls_and_bidi_are_escaped);
    tcase_add_test(tc, overlong_and_surrogates_are_escaped);
    tcase_add_test(tc, only_canonical_names_decode);
    tcase_add_test(tc, long_names_are_shortened);
    tcase_add_test(tc, random_keys_round_trip_to_clean_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(names_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
