/* Generator for the jsonw interop test (jsonw_interop.py).
 *
 * Builds N pseudo-random JSON documents (xorshift64*, seeded with the case number, so the run
 * is reproducible) as a list of writer calls, replays each list through lq_jw at indent 0, 2
 * and 4, and prints per case:
 *   case <i>
 *   tokens <token> <token> ...
 *   out0 <hex of the compact text>
 *   out2 <hex of the indent-2 text>
 *   out4 <hex of the indent-4 text>
 * Tokens: { } [ ] (containers), k<hex> (key bytes), s<hex> (string bytes), u<decimal>,
 * i<decimal>, d<digits>:<16 hex digits of the IEEE bits> (lq_jw_double), x<16 hex digits>
 * (lq_jw_double_exact), t f n (true, false, null). The Python side rebuilds the object from the
 * tokens alone and renders it with json.dumps, so our text is compared with an independent
 * implementation. Random strings never contain '@' or '#': '@' is reserved for the Python
 * side's number placeholders, and '#' makes keys unique within an object (member 0 has a
 * random key without '#', member j > 0 a random key plus "#j"), which a Python dict needs.
 * Usage: jsonw_interop_gen [cases] (default 400). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libquant/jsonw.h"

typedef enum { T_BO, T_EO, T_BA, T_EA, T_KEY, T_STR, T_U64, T_I64, T_DBL, T_DBLX, T_TRUE,
               T_FALSE, T_NULL } tkind;

typedef struct tok {
    tkind kind;
    char s[96];
    size_t n;
    uint64_t u;
    int64_t i;
    double d;
    int digits;
} tok;

static tok *toks;
static size_t ntok, captok;
static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(next() % n);
}

static tok *push(tkind k)
{
    if (ntok == captok) {
        captok = captok ? captok * 2 : 256;
        toks = realloc(toks, captok * sizeof(*toks));
        if (!toks) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
    }
    tok *t = &toks[ntok++];
    memset(t, 0, sizeof(*t));
    t->kind = k;
    return t;
}

/* Appends random characters (each one complete UTF-8 sequence) to t->s; NUL only when
 * allow_nul (the value then goes through lq_jw_string_n). */
static void random_text(tok *t, int allow_nul)
{
    static const char *pieces[] = {
        "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", " ", "'",
        "\xC3\xA9", "\xC3\x9F", "\xDF\xBF", "\xE2\x82\xAC", "\xE2\x80\xA8", "\xEF\xBF\xBD",
        "\xE0\xA0\x80", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF", "\x0b", "\x1b",
    };
    unsigned len = pick(12);
    for (unsigned j = 0; j < len; j++) {
        const char *p;
        char one[2] = {0, 0};
        unsigned r = pick(4);
        if (r < 2) { /* printable ASCII except '@' and '#' */
            do
                one[0] = (char)(0x20 + pick(95));
            while (one[0] == '@' || one[0] == '#');
            p = one;
        } else if (r == 2 && allow_nul && pick(4) == 0) {
            t->s[t->n++] = '\0';
            continue;
        } else {
            p = pieces[pick(sizeof(pieces) / sizeof(pieces[0]))];
        }
        size_t k = strlen(p);
        memcpy(t->s + t->n, p, k);
        t->n += k;
    }
}

static double random_double(void)
{
    switch (pick(6)) {
    case 0: return (double)(int64_t)(next() % 2001) - 1000.0;
    case 1: return ((double)(next() >> 11) / 9007199254740992.0 - 0.5) * 1e6;
    case 2: { /* any finite bit pattern */
        double v;
        uint64_t b;
        do {
            b = next();
            memcpy(&v, &b, sizeof(v));
        } while (!isfinite(v));
        return v;
    }
    case 3: return pick(2) ? 0.0 : -0.0;
    case 4: return ((double)(next() >> 11) / 9007199254740992.0) * 1e-6;
    default: {
        const double odd[] = {INFINITY, -INFINITY, NAN, 5e-324, 1.7976931348623157e308, 0.1,
                              1e21, 1e-7, 123456789.0};
        return odd[pick(sizeof(odd) / sizeof(odd[0]))];
    }
    }
}

static void gen_value(int depth)
{
    unsigned r = pick(depth < 4 ? 14 : 10);
    tok *t;
    switch (r) {
    case 0: case 1: t = push(T_STR); random_text(t, 1); break;
    case 2: t = push(T_U64); t->u = pick(3) ? next() % 100000 : next(); break;
    case 3: {
        t = push(T_I64);
        uint64_t b = next();
        memcpy(&t->i, &b, sizeof(t->i));
        if (pick(3))
            t->i %= 1000;
        if (pick(20) == 0)
            t->i = INT64_MIN;
        break;
    }
    case 4: t = push(T_DBL); t->d = random_double(); t->digits = 1 + (int)pick(17); break;
    case 5: t = push(T_DBLX); t->d = random_double(); break;
    case 6: push(T_TRUE); break;
    case 7: push(T_FALSE); break;
    case 8: push(T_NULL); break;
    case 9: t = push(T_U64); t->u = UINT64_MAX; break;
    case 10: case 11: { /* object */
        unsigned n = pick(5);
        push(T_BO);
        for (unsigned j = 0; j < n; j++) {
            t = push(T_KEY);
            random_text(t, 1);
            if (j > 0)
                t->n += (size_t)sprintf(t->s + t->n, "#%u", j);
            gen_value(depth + 1);
        }
        push(T_EO);
        break;
    }
    default: { /* array */
        unsigned n = pick(5);
        push(T_BA);
        for (unsigned j = 0; j < n; j++)
            gen_value(depth + 1);
        push(T_EA);
        break;
    }
    }
}

static void print_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)p[i]);
}

static uint64_t bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

/* Replays the tokens through a writer; 0 on success. */
static int replay(int indent, char **out, size_t *len)
{
    lq_jw *w = lq_jw_new(indent);
    for (size_t i = 0; i < ntok; i++) {
        const tok *t = &toks[i];
        switch (t->kind) {
        case T_BO: lq_jw_begin_object(w); break;
        case T_EO: lq_jw_end_object(w); break;
        case T_BA: lq_jw_begin_array(w); break;
        case T_EA: lq_jw_end_array(w); break;
        case T_KEY: lq_jw_key_n(w, t->s, t->n); break;
        case T_STR: lq_jw_string_n(w, t->s, t->n); break;
        case T_U64: lq_jw_u64(w, t->u); break;
        case T_I64: lq_jw_i64(w, t->i); break;
        case T_DBL: lq_jw_double(w, t->d, t->digits); break;
        case T_DBLX: lq_jw_double_exact(w, t->d); break;
        case T_TRUE: lq_jw_bool(w, 1); break;
        case T_FALSE: lq_jw_bool(w, 0); break;
        case T_NULL: lq_jw_null(w); break;
        }
    }
    lq_error err;
    lq_status st = lq_jw_finish(w, out, len, &err);
    lq_jw_free(w);
    if (st != LQ_OK) {
        char eb[1024];
        fprintf(stderr, "writer failed: %s\n", lq_error_format(&err, eb, sizeof(eb)));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int cases = argc > 1 ? atoi(argv[1]) : 400;
    for (int c = 0; c < cases; c++) {
        rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)c * 0xD1B54A32D192ED03ull);
        if (rng == 0)
            rng = 1;
        ntok = 0;
        if (c % 8 == 0) {
            gen_value(3); /* scalars and shallow containers at the top level too */
        } else {
            push(T_BO);
            unsigned n = 1 + pick(6);
            for (unsigned j = 0; j < n; j++) {
                tok *t = push(T_KEY);
                random_text(t, 0);
                if (j > 0)
                    t->n += (size_t)sprintf(t->s + t->n, "#%u", j);
                gen_value(1);
            }
            push(T_EO);
        }
        printf("case %d\ntokens", c);
        for (size_t i = 0; i < ntok; i++) {
            const tok *t = &toks[i];
            putchar(' ');
            switch (t->kind) {
            case T_BO: putchar('{'); break;
            case T_EO: putchar('}'); break;
            case T_BA: putchar('['); break;
            case T_EA: putchar(']'); break;
            case T_KEY: putchar('k'); print_hex(t->s, t->n); break;
            case T_STR: putchar('s'); print_hex(t->s, t->n); break;
            case T_U64: printf("u%" PRIu64, t->u); break;
            case T_I64: printf("i%" PRId64, t->i); break;
            case T_DBL: printf("d%d:%016" PRIx64, t->digits, bits(t->d)); break;
            case T_DBLX: printf("x%016" PRIx64, bits(t->d)); break;
            case T_TRUE: putchar('t'); break;
            case T_FALSE: putchar('f'); break;
            case T_NULL: putchar('n'); break;
            }
        }
        putchar('\n');
        static const int indents[] = {0, 2, 4};
        for (int k = 0; k < 3; k++) {
            char *out = NULL;
            size_t len = 0;
            if (replay(indents[k], &out, &len) != 0)
                return 1;
            printf("out%d ", indents[k]);
            print_hex(out, len);
            putchar('\n');
            free(out);
        }
    }
    free(toks);
    return 0;
}
