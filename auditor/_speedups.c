/*
 * auditor._speedups: the log engine's hot loops, compiled (optional).
 *
 * Scanner(program, levels, parse_ts, skipped, reasons) reads a stderr log as decoded
 * text blocks (lines separated by "\n"; every block but the last ends with one, so a
 * record may span blocks but a line never does). scanner.start(blocks, sessions,
 * Record, idle_s) is an iterator over its records, handed out one at a time so that
 * each is judged against the sessions as the reader has left them:
 *
 *     (session, us, ts, SQL)                      the short path, or
 *     (None, Record(ts, pid, session, user, db, app, host, level, message), None, None)
 *
 * The short path is a LOG record "duration: X ms  statement: SQL" whose X is plain
 * decimal digits (us = round half even of X * 1000, as Python's round(float(X) * 1000);
 * m / 10^k is the correctly rounded double strtod would give for up to 15 digits) of a
 * session in ``sessions`` that consume()'s short path would take: user and application
 * already known where the record has them, not muted, not silent for longer than
 * idle_s. Everything else is a Record, with ts epoch seconds or None, empty
 * user/db/app/host as None, host cut at "(", the message's continuation lines joined
 * with "\n". literal_key(sql) is auditor.fingerprint.literal_key, compiled.
 *
 * The prefix is matched by a small backtracking matcher over ``program``, the same
 * language of atoms as the regular expression auditor.collectors.querylog.prefix
 * compiles (literal text, " *" padding, lazy ".*?", "\d+", timestamps, ...), tried in
 * the same order, so a line matches exactly when the regular expression does and the
 * fields are the same (tests/test_scan.py checks this on every fixture and corpus log
 * and on mutated lines). The line rules are read_stderr's in formats.py, step for
 * step: a line starting with a tab continues the record; a line that does not match
 * and starts with a space continues it too; an empty line is ignored; any other line
 * that does not match is skipped (reasons[0]); a tab line with no record open is
 * skipped (reasons[1]) unless it follows a record dropped for its timestamp; a record
 * whose timestamp parse_ts cannot read is dropped (reasons[2]). Skips are counted in
 * the ``skipped`` dict as they happen; ``matched``/``unmatched`` count first lines.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

enum {
    OP_LIT, OP_SPACES, OP_ANY, OP_HOST_R, OP_DIGITS1, OP_DIGITS0, OP_TS_S, OP_TS_MS,
    OP_EPOCH, OP_SQLSTATE, OP_SESSION, OP_VXID, OP_QID, OP_OPT, OP_OPT_END, OP_LEVEL,
    OP__COUNT
};

/* field slots (the groups of the regular expression, by name) */
enum { S_TS, S_EPOCH, S_PID, S_SESSION, S_USER, S_DB, S_APP, S_HOST, NSLOTS };

#define MAX_OPS 256
#define LONG_LINE 0xFDD0  /* inputs.LONG_LINE: what replaces a line too long to read */
#define MAX_LEVELS 32

typedef struct {
    int op;
    int slot;          /* capture slot or -1 */
    int arg;           /* OP_OPT: index of the op after the group */
    Py_UCS4 *lit;      /* OP_LIT */
    Py_ssize_t litlen;
} Op;

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t end;                 /* end of the line (exclusive) */
    Py_ssize_t cs[NSLOTS], ce[NSLOTS];  /* captures; cs = -1: unset */
    int level;
    Py_ssize_t msg;
} Ctx;

typedef struct {
    PyObject_HEAD
    Op ops[MAX_OPS];
    int nops;
    Py_UCS4 *levels[MAX_LEVELS];
    Py_ssize_t levellen[MAX_LEVELS];
    PyObject *levelobj[MAX_LEVELS];
    int nlevels;
    int log_level;                  /* the index of "LOG" in levels, or -1 */
    PyObject *parse_ts;
    PyObject *skipped;
    PyObject *reasons[4];           /* no prefix, orphan continuation, bad timestamp, too long */
    Py_ssize_t max_chars;           /* a record longer than this is dropped */
    Py_ssize_t cur_size;            /* the open record's characters, once it has a continuation */
    /* the open record */
    int have_cur;
    PyObject *cur[8];               /* ts, pid, session, user, db, app, host, level */
    PyObject *cur_msg;              /* its first line's message, once materialised */
    Py_ssize_t cur_ms, cur_me;      /* or its range in the current block */
    PyObject *cur_parts;            /* list of lines once it has a continuation */
    int dropping;
    /* caches */
    PyObject *last[NSLOTS];         /* the last value made for each slot */
    Py_UCS1 ts_key[64];             /* the last timestamp key (ASCII, no fraction) */
    Py_ssize_t ts_keylen;
    double ts_base;
    Py_ssize_t matched, unmatched;
    /* iteration */
    PyObject *blocks;               /* the iterator of text blocks */
    PyObject *block;                /* the block being read */
    Py_ssize_t bpos, blen;
    PyObject *sessions;             /* the reader's session map, or NULL */
    PyObject *record_type;
    double idle_s;                  /* the session idle limit (s) */
    PyObject *ready;                /* the next record to hand out */
    int done;
} Scanner;

#define CH(c, p) PyUnicode_READ((c)->kind, (c)->data, (p))

static inline int is_dig(Py_UCS4 ch) {
    return ch < 128 ? (ch >= '0' && ch <= '9') : Py_UNICODE_ISDECIMAL(ch);
}
static inline int is_space(Py_UCS4 ch) { return Py_UNICODE_ISSPACE(ch); }
static inline int is_tzch(Py_UCS4 ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
        || ch == '+' || ch == '-';
}
static inline int is_hex(Py_UCS4 ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}
static inline int is_state(Py_UCS4 ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z');
}

static int match_at(Scanner *s, Ctx *c, int i, Py_ssize_t pos);

/* try the rest of the program with op i's element ending at e */
static inline int try_end(Scanner *s, Ctx *c, int i, Py_ssize_t pos, Py_ssize_t e) {
    int slot = s->ops[i].slot;
    if (slot >= 0) {
        Py_ssize_t os = c->cs[slot], oe = c->ce[slot];
        c->cs[slot] = pos;
        c->ce[slot] = e;
        if (match_at(s, c, i + 1, e))
            return 1;
        c->cs[slot] = os;
        c->ce[slot] = oe;
        return 0;
    }
    return match_at(s, c, i + 1, e);
}

static Py_ssize_t run(Ctx *c, Py_ssize_t p, int (*pred)(Py_UCS4)) {
    while (p < c->end && pred(CH(c, p)))
        p++;
    return p;
}
static int pred_dig(Py_UCS4 ch) { return is_dig(ch); }
static int pred_tz(Py_UCS4 ch) { return is_tzch(ch); }
static int pred_hex(Py_UCS4 ch) { return is_hex(ch); }
static int pred_vxid(Py_UCS4 ch) { return is_dig(ch) || ch == '/' || ch == '-'; }
static int pred_host(Py_UCS4 ch) { return !is_space(ch) && ch != '('; }

/* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d at p */
static int ts_shape(Ctx *c, Py_ssize_t p) {
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    if (p + 19 > c->end)
        return 0;
    for (int k = 0; k < 19; k++) {
        Py_UCS4 ch = CH(c, p + k);
        if (shape[k] == 'd') {
            if (!is_dig(ch))
                return 0;
        } else if (ch != (Py_UCS4)shape[k]) {
            return 0;
        }
    }
    return 1;
}

/* (?: [A-Za-z0-9+-]+)? after b: the candidates, longest first, then b itself */
static int ts_zone(Scanner *s, Ctx *c, int i, Py_ssize_t pos, Py_ssize_t b) {
    if (b < c->end && CH(c, b) == ' ') {
        Py_ssize_t z = run(c, b + 1, pred_tz);
        for (Py_ssize_t e = z; e >= b + 2; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
    }
    return try_end(s, c, i, pos, b);
}

static int match_level(Scanner *s, Ctx *c, Py_ssize_t pos) {
    for (int k = 0; k < s->nlevels; k++) {
        Py_ssize_t n = s->levellen[k];
        Py_ssize_t p = pos;
        if (p + n + 2 > c->end)
            continue;
        Py_ssize_t j = 0;
        while (j < n && CH(c, p + j) == s->levels[k][j])
            j++;
        if (j < n)
            continue;
        p += n;
        if (CH(c, p) != ':')
            continue;
        p++;
        if (!is_space(CH(c, p)))
            continue;
        while (p < c->end && is_space(CH(c, p)))
            p++;
        c->level = k;
        c->msg = p;
        return 1;
    }
    return 0;
}

static int match_at(Scanner *s, Ctx *c, int i, Py_ssize_t pos) {
    Op *o = &s->ops[i];
    Py_ssize_t e, n;
    switch (o->op) {
    case OP_LIT:
        if (pos + o->litlen > c->end)
            return 0;
        for (n = 0; n < o->litlen; n++)
            if (CH(c, pos + n) != o->lit[n])
                return 0;
        return try_end(s, c, i, pos, pos + o->litlen);
    case OP_SPACES:
        e = pos;
        while (e < c->end && CH(c, e) == ' ')
            e++;
        for (; e >= pos; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    case OP_ANY: {
        Op *next = &s->ops[i + 1];
        if (next->op == OP_LIT) {  /* only where the literal's first character is */
            Py_UCS4 first = next->lit[0];
            for (e = pos; e < c->end; e++)
                if (CH(c, e) == first && try_end(s, c, i, pos, e))
                    return 1;
            return 0;
        }
        for (e = pos; e <= c->end; e++)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    }
    case OP_HOST_R:  /* [^\s(]*?(?:\(\d*\))? */
        for (e = pos;; e++) {
            if (e < c->end && CH(c, e) == '(') {
                Py_ssize_t d = run(c, e + 1, pred_dig);
                if (d < c->end && CH(c, d) == ')' && try_end(s, c, i, pos, d + 1))
                    return 1;
            }
            if (try_end(s, c, i, pos, e))
                return 1;
            if (e >= c->end || !pred_host(CH(c, e)))
                return 0;
        }
    case OP_DIGITS1:
    case OP_DIGITS0:
    case OP_VXID: {
        Py_ssize_t lo = o->op == OP_DIGITS1 ? pos + 1 : pos;
        e = run(c, pos, o->op == OP_VXID ? pred_vxid : pred_dig);
        for (; e >= lo; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    }
    case OP_QID:  /* -?\d+ */
        if (pos < c->end && CH(c, pos) == '-') {
            for (e = run(c, pos + 1, pred_dig); e >= pos + 2; e--)
                if (try_end(s, c, i, pos, e))
                    return 1;
        }
        for (e = run(c, pos, pred_dig); e >= pos + 1; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    case OP_SQLSTATE:
        if (pos + 5 > c->end)
            return 0;
        for (n = 0; n < 5; n++)
            if (!is_state(CH(c, pos + n)))
                return 0;
        return try_end(s, c, i, pos, pos + 5);
    case OP_SESSION: {  /* [0-9a-f]+\.[0-9a-f]+ */
        Py_ssize_t a = run(c, pos, pred_hex);
        if (a == pos || a >= c->end || CH(c, a) != '.')
            return 0;
        for (e = run(c, a + 1, pred_hex); e >= a + 2; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    }
    case OP_EPOCH: {  /* \d+(?:\.\d+)? */
        Py_ssize_t a = run(c, pos, pred_dig);
        if (a == pos)
            return 0;
        if (a < c->end && CH(c, a) == '.') {
            for (e = run(c, a + 1, pred_dig); e >= a + 2; e--)
                if (try_end(s, c, i, pos, e))
                    return 1;
        }
        for (e = a; e >= pos + 1; e--)
            if (try_end(s, c, i, pos, e))
                return 1;
        return 0;
    }
    case OP_TS_S:
        if (!ts_shape(c, pos))
            return 0;
        return ts_zone(s, c, i, pos, pos + 19);
    case OP_TS_MS: {  /* ...\.\d+(?: [A-Za-z0-9+-]+)? */
        if (!ts_shape(c, pos) || pos + 19 >= c->end || CH(c, pos + 19) != '.')
            return 0;
        Py_ssize_t d = run(c, pos + 20, pred_dig);
        for (; d >= pos + 21; d--)
            if (ts_zone(s, c, i, pos, d))
                return 1;
        return 0;
    }
    case OP_OPT: {  /* (?:tail)? greedy: with the tail first */
        Py_ssize_t save_s[NSLOTS], save_e[NSLOTS];
        memcpy(save_s, c->cs, sizeof save_s);
        memcpy(save_e, c->ce, sizeof save_e);
        if (match_at(s, c, i + 1, pos))
            return 1;
        memcpy(c->cs, save_s, sizeof save_s);
        memcpy(c->ce, save_e, sizeof save_e);
        return match_at(s, c, o->arg, pos);
    }
    case OP_OPT_END:
        return match_at(s, c, i + 1, pos);
    case OP_LEVEL:
        return match_level(s, c, pos);
    }
    return 0;
}

/* -- values ------------------------------------------------------------------------ */
static PyObject *substring(PyObject *text, Py_ssize_t a, Py_ssize_t b) {
    return PyUnicode_Substring(text, a, b);
}

/* the slot's text as a str, reusing the last one made when equal (new reference) */
static PyObject *slot_value(Scanner *s, Ctx *c, PyObject *text, int slot, int none_if_empty) {
    Py_ssize_t a = c->cs[slot], b = c->ce[slot];
    if (a < 0)
        Py_RETURN_NONE;
    if (slot == S_HOST) {
        for (Py_ssize_t k = a; k < b; k++)
            if (CH(c, k) == '(') {
                b = k;
                break;
            }
    }
    if (b == a && none_if_empty)
        Py_RETURN_NONE;
    PyObject *last = s->last[slot];
    if (last != NULL && PyUnicode_GET_LENGTH(last) == b - a) {
        int lk = PyUnicode_KIND(last);
        const void *ld = PyUnicode_DATA(last);
        Py_ssize_t k = 0;
        if (lk == c->kind && lk == PyUnicode_1BYTE_KIND) {
            if (memcmp(ld, (const Py_UCS1 *)c->data + a, (size_t)(b - a)) == 0)
                k = b - a;
        } else {
            while (k < b - a && PyUnicode_READ(lk, ld, k) == CH(c, a + k))
                k++;
        }
        if (k == b - a) {
            Py_INCREF(last);
            return last;
        }
    }
    PyObject *v = substring(text, a, b);
    if (v == NULL)
        return NULL;
    Py_XSETREF(s->last[slot], Py_NewRef(v));
    return v;
}

static int bump(Scanner *s, int reason) {
    PyObject *key = s->reasons[reason];
    PyObject *old = PyDict_GetItemWithError(s->skipped, key);
    long n = 0;
    if (old == NULL && PyErr_Occurred())
        return -1;
    if (old != NULL) {
        n = PyLong_AsLong(old);
        if (n == -1 && PyErr_Occurred())
            return -1;
    }
    PyObject *v = PyLong_FromLong(n + 1);
    if (v == NULL)
        return -1;
    int r = PyDict_SetItem(s->skipped, key, v);
    Py_DECREF(v);
    return r;
}

/* the double nearest to the decimal text buf[0..n) (digits with at most one '.', at
   least one digit): m / 10^k, exact when m < 2^53 and k <= 22 (both operands exact,
   the division correctly rounded, as strtod's result is); else strtod. */
static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
    1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int decimal_value(const char *buf, Py_ssize_t n, double *out) {
    unsigned long long m = 0;
    int digits = 0, k = 0, seen_dot = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '.') {
            seen_dot = 1;
            continue;
        }
        if (m == 0 && ch == '0') {  /* leading zeros add no precision */
            if (seen_dot)
                k++;
            continue;
        }
        m = m * 10 + (unsigned long long)(ch - '0');
        digits++;
        if (seen_dot)
            k++;
    }
    if (digits <= 15 && k <= 22) {
        *out = (double)m / POW10[k];
        return 0;
    }
    char tmp[64];
    if (n >= (Py_ssize_t)sizeof tmp)
        return -1;
    memcpy(tmp, buf, (size_t)n);
    tmp[n] = '\0';
    *out = PyOS_string_to_double(tmp, NULL, NULL);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* the record's epoch seconds: a new reference to a float or None; NULL with no error
   set when parse_ts cannot read the text (the record is dropped) */
static PyObject *timestamp(Scanner *s, Ctx *c, PyObject *text) {
    Py_ssize_t a = c->cs[S_TS], b = c->ce[S_TS];
    if (a >= 0) {
        /* an ASCII timestamp: the key (text without its fraction) is cached */
        int ascii = c->kind == PyUnicode_1BYTE_KIND;
        Py_ssize_t n = b - a;
        if (ascii) {
            const Py_UCS1 *d = (const Py_UCS1 *)c->data + a;
            for (Py_ssize_t k = 0; k < n; k++)
                if (d[k] >= 128) {
                    ascii = 0;
                    break;
                }
        }
        if (ascii && n >= 19 && n < 60) {
            const Py_UCS1 *d = (const Py_UCS1 *)c->data + a;
            Py_UCS1 key[64];
            Py_ssize_t klen = 19, fe = 19;
            memcpy(key, d, 19);
            double f = 0.0;
            if (n > 19 && d[19] == '.') {
                fe = 20;
                while (fe < n && d[fe] >= '0' && d[fe] <= '9')
                    fe++;
                if (decimal_value((const char *)d + 19, fe - 19, &f) < 0) {
                    PyErr_SetString(PyExc_ValueError, "unreadable timestamp fraction");
                    return NULL;
                }
            }
            memcpy(key + 19, d + fe, (size_t)(n - fe));
            klen = 19 + (n - fe);
            if (!(klen == s->ts_keylen && memcmp(key, s->ts_key, (size_t)klen) == 0)) {
                PyObject *ks = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, key, klen);
                if (ks == NULL)
                    return NULL;
                PyObject *base = PyObject_CallOneArg(s->parse_ts, ks);
                Py_DECREF(ks);
                if (base == NULL)
                    return NULL;
                if (base == Py_None) {
                    Py_DECREF(base);
                    return NULL;  /* unreadable: dropped, no error */
                }
                double bv = PyFloat_AsDouble(base);
                Py_DECREF(base);
                if (bv == -1.0 && PyErr_Occurred())
                    return NULL;
                memcpy(s->ts_key, key, (size_t)klen);
                s->ts_keylen = klen;
                s->ts_base = bv;
            }
            return PyFloat_FromDouble(s->ts_base + f);
        }
        PyObject *t = substring(text, a, b);
        if (t == NULL)
            return NULL;
        PyObject *v = PyObject_CallOneArg(s->parse_ts, t);
        Py_DECREF(t);
        if (v == Py_None) {
            Py_DECREF(v);
            return NULL;
        }
        return v;
    }
    if (c->cs[S_EPOCH] >= 0 && c->ce[S_EPOCH] > c->cs[S_EPOCH]) {
        PyObject *t = substring(text, c->cs[S_EPOCH], c->ce[S_EPOCH]);
        if (t == NULL)
            return NULL;
        PyObject *v = PyFloat_FromString(t);
        Py_DECREF(t);
        return v;
    }
    Py_RETURN_NONE;
}

/* -- records ----------------------------------------------------------------------- */
static PyObject *STR_USER, *STR_APP, *STR_MUTED, *STR_SEEN, *STR_QMARK, *STR_NL;

static void clear_cur(Scanner *s) {
    for (int k = 0; k < 8; k++)
        Py_CLEAR(s->cur[k]);
    Py_CLEAR(s->cur_msg);
    Py_CLEAR(s->cur_parts);
    s->have_cur = 0;
}

/* the open record's first-line message as an object (new reference) */
static PyObject *cur_first(Scanner *s, PyObject *block) {
    if (s->cur_msg != NULL)
        return Py_NewRef(s->cur_msg);
    return substring(block, s->cur_ms, s->cur_me);
}

/* before the block changes: keep the open record's message as an object */
static int settle_cur(Scanner *s, PyObject *block) {
    if (s->have_cur && s->cur_msg == NULL && s->cur_parts == NULL) {
        s->cur_msg = substring(block, s->cur_ms, s->cur_me);
        if (s->cur_msg == NULL)
            return -1;
    }
    return 0;
}

/* text[a:b] is "duration: X ms  statement: SQL": the offset of SQL from a, and X in
   integer microseconds in *us (-1: X is not plain decimal digits; the caller parses
   it as Python does); 0 when the text is not of that form. The separator is the first
   " ms  statement: " after "duration: ", as str.find finds it. */
static Py_ssize_t duration_form(int kind, const void *d, Py_ssize_t a, Py_ssize_t b,
                                long long *us) {
    static const char head[] = "duration: ";
    static const char sep[] = " ms  statement: ";
    Py_ssize_t n = b - a;
    if (n < 10 + 16)
        return 0;
    for (int k = 0; k < 10; k++)
        if (PyUnicode_READ(kind, d, a + k) != (Py_UCS4)head[k])
            return 0;
    Py_ssize_t j = -1;
    for (Py_ssize_t p = a + 10; p + 16 <= b; p++) {
        if (PyUnicode_READ(kind, d, p) != ' ')
            continue;
        int k = 1;
        while (k < 16 && PyUnicode_READ(kind, d, p + k) == (Py_UCS4)sep[k])
            k++;
        if (k == 16) {
            j = p - a;
            break;
        }
    }
    if (j < 0)
        return 0;
    *us = -1;
    Py_ssize_t len = j - 10;
    if (len >= 1 && len < 40) {
        char buf[48];
        int dots = 0, ok = 1;
        for (Py_ssize_t k = 0; k < len; k++) {
            Py_UCS4 ch = PyUnicode_READ(kind, d, a + 10 + k);
            if (ch == '.')
                dots++;
            else if (ch < '0' || ch > '9')
                ok = 0;
            buf[k] = (char)ch;
        }
        if (ok && dots <= 1 && !(len == 1 && dots == 1)) {
            double x;
            if (decimal_value(buf, len, &x) == 0) {
                x *= 1000.0;
                double r = round(x);  /* Python's float.__round__: half to even */
                if (fabs(x - r) == 0.5)
                    r = 2.0 * round(x / 2.0);
                if (isfinite(r) && fabs(r) < 9e15)
                    *us = (long long)r;
            }
        }
    }
    return j + 16;
}

static inline int truthy_str(PyObject *o) {
    return o != Py_None && PyUnicode_GET_LENGTH(o) > 0;
}

/* whether attribute ``name`` of ``obj`` is None (-1 on error) */
static int attr_is_none(PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int r = v == Py_None;
    Py_DECREF(v);
    return r;
}

/* The session the fast path may take for the open record (borrowed), or NULL (no
   error set) when it must take the general one: the consume() rule, a known session
   with its user and application already set where the record has them, not muted,
   and not silent for longer than idle_s before the record (the idle-session rule). */
static PyObject *fast_session(Scanner *s, int *err) {
    *err = 0;
    if (s->sessions == NULL)
        return NULL;
    PyObject *key = truthy_str(s->cur[2]) ? s->cur[2]
                  : truthy_str(s->cur[1]) ? s->cur[1] : STR_QMARK;
    PyObject *sess = PyDict_GetItemWithError(s->sessions, key);
    if (sess == NULL) {
        if (PyErr_Occurred())
            *err = 1;
        return NULL;
    }
    int r;
    if (s->cur[3] != Py_None) {
        if ((r = attr_is_none(sess, STR_USER)) != 0) {
            *err = r < 0;
            return NULL;
        }
    }
    if (s->cur[5] != Py_None) {
        if ((r = attr_is_none(sess, STR_APP)) != 0) {
            *err = r < 0;
            return NULL;
        }
    }
    if (s->cur[0] != Py_None) {  /* the idle rule: not silent for longer than idle_s */
        PyObject *seen = PyObject_GetAttr(sess, STR_SEEN);
        if (seen == NULL) {
            *err = 1;
            return NULL;
        }
        if (seen != Py_None) {
            double a = PyFloat_AsDouble(s->cur[0]), b = PyFloat_AsDouble(seen);
            Py_DECREF(seen);
            if ((a == -1.0 || b == -1.0) && PyErr_Occurred()) {
                *err = 1;
                return NULL;
            }
            if (a - b > s->idle_s)
                return NULL;
        } else {
            Py_DECREF(seen);
        }
    }
    PyObject *muted = PyObject_GetAttr(sess, STR_MUTED);
    if (muted == NULL) {
        *err = 1;
        return NULL;
    }
    r = PyObject_IsTrue(muted);
    Py_DECREF(muted);
    if (r != 0) {
        *err = r < 0;
        return NULL;
    }
    return sess;
}

/* the open record → s->ready: (session, us, ts, SQL) for the fast path, else
   (None, Record(ts, pid, session, user, db, app, host, level, message), None, None) */
static int emit(Scanner *s, PyObject *block) {
    PyObject *msg = NULL, *src;
    Py_ssize_t ma, mb;
    if (s->cur_parts != NULL) {
        msg = PyUnicode_Join(STR_NL, s->cur_parts);
        if (msg == NULL)
            return -1;
    } else if (s->cur_msg != NULL) {
        msg = Py_NewRef(s->cur_msg);
    }
    if (msg != NULL) {
        src = msg;
        ma = 0;
        mb = PyUnicode_GET_LENGTH(msg);
    } else {
        src = block;
        ma = s->cur_ms;
        mb = s->cur_me;
    }
    PyObject *ts = s->cur[0];
    if (s->log_level >= 0 && s->cur[7] == s->levelobj[s->log_level]) {
        long long u = 0;
        Py_ssize_t j = duration_form(PyUnicode_KIND(src), PyUnicode_DATA(src), ma, mb, &u);
        if (j > 0 && u >= 0) {  /* other durations: the general path reads them */
            int err;
            PyObject *sess = fast_session(s, &err);
            if (err)
                goto fail;
            if (sess != NULL) {
                PyObject *stmt = substring(src, ma + j, mb);
                if (stmt == NULL)
                    goto fail;
                PyObject *uo = PyLong_FromLongLong(u);
                if (uo == NULL) {
                    Py_DECREF(stmt);
                    goto fail;
                }
                PyObject *t = PyTuple_Pack(4, sess, uo, ts, stmt);
                Py_DECREF(uo);
                Py_DECREF(stmt);
                if (t == NULL)
                    goto fail;
                Py_XDECREF(msg);
                clear_cur(s);
                s->ready = t;
                return 0;
            }
        }
    }
    if (msg == NULL) {
        msg = substring(block, ma, mb);
        if (msg == NULL)
            goto fail;
    }
    PyObject *args[9] = {s->cur[0], s->cur[1], s->cur[2], s->cur[3], s->cur[4], s->cur[5],
                         s->cur[6], s->cur[7], msg};
    PyObject *rec = PyObject_Vectorcall(s->record_type, args, 9, NULL);
    Py_DECREF(msg);
    msg = NULL;
    if (rec == NULL)
        goto fail;
    PyObject *t = PyTuple_Pack(4, Py_None, rec, Py_None, Py_None);
    Py_DECREF(rec);
    if (t == NULL)
        goto fail;
    clear_cur(s);
    s->ready = t;
    return 0;
fail:
    Py_XDECREF(msg);
    return -1;
}

/* a continuation line block[a:b] of the open record (its text; ``len``: the line's
   length with its tab); a record that grows past max_chars is dropped (read_stderr's
   rule: its size counts the first line's message and every continuation line) */
static int add_part(Scanner *s, PyObject *block, Py_ssize_t a, Py_ssize_t b,
                    Py_ssize_t len) {
    if (s->cur_parts == NULL) {
        PyObject *first = cur_first(s, block);
        if (first == NULL)
            return -1;
        s->cur_size = PyUnicode_GET_LENGTH(first);
        s->cur_parts = PyList_New(1);
        if (s->cur_parts == NULL) {
            Py_DECREF(first);
            return -1;
        }
        PyList_SET_ITEM(s->cur_parts, 0, first);
    }
    PyObject *line = substring(block, a, b);
    if (line == NULL)
        return -1;
    int r = PyList_Append(s->cur_parts, line);
    Py_DECREF(line);
    if (r < 0)
        return -1;
    s->cur_size += len;
    if (s->cur_size > s->max_chars) {
        clear_cur(s);
        s->dropping = 1;
        return bump(s, 3);
    }
    return 0;
}

static int line(Scanner *s, PyObject *block, Py_ssize_t a, Py_ssize_t b) {
    if (a == b)
        return 0;
    Ctx ctx, *c = &ctx;
    c->kind = PyUnicode_KIND(block);
    c->data = PyUnicode_DATA(block);
    Py_UCS4 first = CH(c, a);
    if (first == '\t') {
        if (s->have_cur)
            return add_part(s, block, a + 1, b, b - a);
        if (!s->dropping)
            return bump(s, 1);
        return 0;
    }
    c->end = b;
    for (int k = 0; k < NSLOTS; k++)
        c->cs[k] = c->ce[k] = -1;
    if (!match_at(s, c, 0, a)) {
        if (first == ' ' && s->have_cur)
            return add_part(s, block, a, b, b - a);
        if (first == LONG_LINE) {  /* a line cut by the input layer (counted there) */
            if (!(b - a > 1 && CH(c, a + 1) == '\t') && s->have_cur) {
                if (emit(s, block) < 0)  /* a new record's line: the open one is whole */
                    return -1;
            }
            clear_cur(s);  /* (a continuation was cut: its record goes) */
            s->dropping = 1;
            return 0;
        }
        s->unmatched++;
        return bump(s, 0);
    }
    if (s->have_cur && emit(s, block) < 0)
        return -1;
    PyObject *ts = timestamp(s, c, block);
    if (ts == NULL) {
        if (PyErr_Occurred())
            return -1;
        s->unmatched++;
        s->dropping = 1;
        return bump(s, 2);
    }
    s->matched++;
    s->dropping = 0;
    s->cur[0] = ts;
    static const int slots[6] = {S_PID, S_SESSION, S_USER, S_DB, S_APP, S_HOST};
    for (int k = 0; k < 6; k++) {
        PyObject *v = slot_value(s, c, block, slots[k], k >= 2);
        if (v == NULL) {
            clear_cur(s);
            return -1;
        }
        s->cur[1 + k] = v;
    }
    s->cur[7] = Py_NewRef(s->levelobj[c->level]);
    s->cur_ms = c->msg;
    s->cur_me = b;
    s->have_cur = 1;
    return 0;
}

/* -- the type ---------------------------------------------------------------------- */
/* start(blocks, sessions, record_type, idle_s=inf) -> self: iterate over the records
   of the text blocks ``blocks`` yields; ``sessions``: the reader's session map (None:
   no fast path); ``record_type``: called as record_type(ts, pid, session, user, db,
   app, host, level, message) for the records the fast path does not take; idle_s: the
   session idle limit in seconds (a session's ``seen`` older than that before the
   record: the general path). */
static PyObject *Scanner_start(Scanner *s, PyObject *args) {
    PyObject *blocks, *sessions, *record_type;
    double idle_s = INFINITY;
    if (!PyArg_ParseTuple(args, "OOO|d", &blocks, &sessions, &record_type, &idle_s))
        return NULL;
    s->idle_s = idle_s;
    if (sessions != Py_None && !PyDict_Check(sessions)) {
        PyErr_SetString(PyExc_TypeError, "sessions must be a dict or None");
        return NULL;
    }
    PyObject *it = PyObject_GetIter(blocks);
    if (it == NULL)
        return NULL;
    Py_XSETREF(s->blocks, it);
    Py_XSETREF(s->sessions, sessions == Py_None ? NULL : Py_NewRef(sessions));
    Py_XSETREF(s->record_type, Py_NewRef(record_type));
    Py_CLEAR(s->block);
    Py_CLEAR(s->ready);
    clear_cur(s);
    s->done = 0;
    s->dropping = 0;
    return Py_NewRef((PyObject *)s);
}

static PyObject *Scanner_next(Scanner *s) {
    for (;;) {
        if (s->ready != NULL) {
            PyObject *r = s->ready;
            s->ready = NULL;
            return r;
        }
        if (s->done || s->blocks == NULL || s->record_type == NULL)
            return NULL;
        if (s->block == NULL || s->bpos >= s->blen) {
            if (s->block != NULL) {
                if (settle_cur(s, s->block) < 0)
                    goto fail;
                Py_CLEAR(s->block);
            }
            PyObject *b = PyIter_Next(s->blocks);
            if (b == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                s->done = 1;
                if (s->have_cur && emit(s, NULL) < 0)
                    goto fail;
                continue;
            }
            if (!PyUnicode_Check(b)) {
                Py_DECREF(b);
                PyErr_SetString(PyExc_TypeError, "the blocks must be str");
                goto fail;
            }
            s->block = b;
            s->bpos = 0;
            s->blen = PyUnicode_GET_LENGTH(b);
            continue;
        }
        PyObject *block = s->block;
        Py_ssize_t a = s->bpos, n = s->blen, e;
        if (PyUnicode_KIND(block) == PyUnicode_1BYTE_KIND) {
            const Py_UCS1 *d = PyUnicode_1BYTE_DATA(block);
            const Py_UCS1 *p = memchr(d + a, '\n', (size_t)(n - a));
            e = p ? p - d : n;
        } else {
            e = PyUnicode_FindChar(block, '\n', a, n, 1);
            if (e == -2)
                goto fail;
            if (e < 0)
                e = n;
        }
        s->bpos = e + 1;
        if (line(s, block, a, e) < 0)
            goto fail;
    }
fail:
    clear_cur(s);
    Py_CLEAR(s->block);
    s->done = 1;
    return NULL;
}

/* match(line) -> the regular expression's groups, in slot order, then level and
   message; None when the line does not match (for the equivalence tests) */
static PyObject *Scanner_match(Scanner *s, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "match() takes a str");
        return NULL;
    }
    Ctx c;
    c.kind = PyUnicode_KIND(text);
    c.data = PyUnicode_DATA(text);
    c.end = PyUnicode_GET_LENGTH(text);
    for (int k = 0; k < NSLOTS; k++)
        c.cs[k] = c.ce[k] = -1;
    if (!match_at(s, &c, 0, 0))
        Py_RETURN_NONE;
    PyObject *t = PyTuple_New(NSLOTS + 2);
    if (t == NULL)
        return NULL;
    for (int k = 0; k < NSLOTS; k++) {
        PyObject *v = c.cs[k] >= 0 ? substring(text, c.cs[k], c.ce[k]) : Py_NewRef(Py_None);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, k, v);
    }
    PyTuple_SET_ITEM(t, NSLOTS, Py_NewRef(s->levelobj[c.level]));
    PyObject *m = substring(text, c.msg, c.end);
    if (m == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, NSLOTS + 1, m);
    return t;
}

static PyObject *Scanner_counts(Scanner *s, void *Py_UNUSED(closure)) {
    return Py_BuildValue("(nn)", s->matched, s->unmatched);
}

static void Scanner_dealloc(Scanner *s) {
    clear_cur(s);
    for (int k = 0; k < s->nops; k++)
        PyMem_Free(s->ops[k].lit);
    for (int k = 0; k < s->nlevels; k++) {
        PyMem_Free(s->levels[k]);
        Py_CLEAR(s->levelobj[k]);
    }
    for (int k = 0; k < NSLOTS; k++)
        Py_CLEAR(s->last[k]);
    Py_CLEAR(s->parse_ts);
    Py_CLEAR(s->skipped);
    Py_CLEAR(s->blocks);
    Py_CLEAR(s->block);
    Py_CLEAR(s->sessions);
    Py_CLEAR(s->record_type);
    Py_CLEAR(s->ready);
    for (int k = 0; k < 4; k++)
        Py_CLEAR(s->reasons[k]);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static Py_UCS4 *ucs4_of(PyObject *str, Py_ssize_t *len) {
    *len = PyUnicode_GET_LENGTH(str);
    return PyUnicode_AsUCS4Copy(str);
}

/* Scanner(program, levels, parse_ts, skipped, reasons)
   program: a sequence of (op, text or None, slot, arg); levels: the severity words in
   the order the alternation tries them; reasons: the three skip reasons. */
static int Scanner_init(Scanner *s, PyObject *args, PyObject *kw) {
    PyObject *program, *levels, *parse_ts, *skipped, *reasons;
    Py_ssize_t max_chars = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTuple(args, "OOOO!O|n", &program, &levels, &parse_ts, &PyDict_Type,
                          &skipped, &reasons, &max_chars))
        return -1;
    s->max_chars = max_chars;
    if (s->nops) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.__init__ called twice");
        return -1;
    }
    PyObject *seq = PySequence_Fast(program, "program must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n + 1 > MAX_OPS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "log_line_prefix too long for the scanner");
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k), *text;
        int op, slot, arg;
        if (!PyArg_ParseTuple(item, "iOii", &op, &text, &slot, &arg))
            goto bad;
        if (op < 0 || op >= OP__COUNT || slot < -1 || slot >= NSLOTS || arg < 0 || arg > n) {
            PyErr_SetString(PyExc_ValueError, "bad scanner op");
            goto bad;
        }
        Op *o = &s->ops[s->nops++];
        o->op = op;
        o->slot = slot;
        o->arg = arg;
        o->lit = NULL;
        o->litlen = 0;
        if (op == OP_LIT) {
            if (!PyUnicode_Check(text) || PyUnicode_GET_LENGTH(text) == 0) {
                PyErr_SetString(PyExc_ValueError, "a literal op needs a non-empty str");
                goto bad;
            }
            o->lit = ucs4_of(text, &o->litlen);
            if (o->lit == NULL)
                goto bad;
        }
    }
    Py_DECREF(seq);
    {
        Op *o = &s->ops[s->nops++];
        memset(o, 0, sizeof *o);
        o->op = OP_LEVEL;
        o->slot = -1;
    }
    s->log_level = -1;
    seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_LEVELS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "between 1 and 32 levels");
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *w = PySequence_Fast_GET_ITEM(seq, k);
        if (!PyUnicode_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "levels must be str");
            Py_DECREF(seq);
            return -1;
        }
        s->levels[k] = ucs4_of(w, &s->levellen[k]);
        if (s->levels[k] == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        s->levelobj[k] = Py_NewRef(w);
        s->nlevels++;
        if (PyUnicode_CompareWithASCIIString(w, "LOG") == 0)
            s->log_level = (int)k;
    }
    Py_DECREF(seq);
    if (!PyTuple_Check(reasons) || PyTuple_GET_SIZE(reasons) != 4) {
        PyErr_SetString(PyExc_TypeError, "reasons must be a tuple of 4 str");
        return -1;
    }
    for (int k = 0; k < 4; k++)
        s->reasons[k] = Py_NewRef(PyTuple_GET_ITEM(reasons, k));
    s->parse_ts = Py_NewRef(parse_ts);
    s->skipped = Py_NewRef(skipped);
    s->ts_keylen = -1;
    return 0;
bad:
    Py_DECREF(seq);
    return -1;
}

static PyMethodDef Scanner_methods[] = {
    {"start", (PyCFunction)Scanner_start, METH_VARARGS,
     "start(blocks, sessions, record_type, idle_s=inf) -> self, an iterator over the records"},
    {"match", (PyCFunction)Scanner_match, METH_O,
     "match(line: str) -> (ts, epoch, pid, session, user, db, app, host, level, msg) or None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scanner_getset[] = {
    {"counts", (getter)Scanner_counts, NULL, "(matched, unmatched) first lines", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "auditor._speedups.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The stderr log scanner (see the module's C source for the contract).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Scanner_next,
};


/* -- literal_key ------------------------------------------------------------------- */
/* auditor.fingerprint.literal_key, step for step, over the text's UTF-8 bytes (every
   character it looks at is ASCII, and no byte of a multi-byte UTF-8 sequence is). */
static Py_ssize_t find2(const char *b, Py_ssize_t from, Py_ssize_t to, char c1, char c2) {
    for (Py_ssize_t i = from; i + 1 < to; i++)
        if (b[i] == c1 && b[i + 1] == c2)
            return i;
    return -1;
}

static PyObject *literal_key(PyObject *Py_UNUSED(mod), PyObject *sql) {
    if (!PyUnicode_Check(sql)) {
        PyErr_SetString(PyExc_TypeError, "literal_key() takes a str");
        return NULL;
    }
    PyObject *enc = NULL;
    const char *b;
    Py_ssize_t n;
    if (PyUnicode_IS_ASCII(sql)) {
        b = (const char *)PyUnicode_DATA(sql);
        n = PyUnicode_GET_LENGTH(sql);
    } else {
        enc = PyUnicode_AsEncodedString(sql, "utf-8", "surrogatepass");
        if (enc == NULL)
            return NULL;
        b = PyBytes_AS_STRING(enc);
        n = PyBytes_GET_SIZE(enc);
    }
    /* a trailing comment: s[:i] + s[end + 2:] */
    Py_ssize_t cut_from = -1, cut_to = -1;
    if ((n >= 2 && b[n - 2] == '*' && b[n - 1] == '/') ||
        (n >= 3 && b[n - 3] == '*' && b[n - 2] == '/' && b[n - 1] == ';')) {
        Py_ssize_t i = -1;
        for (Py_ssize_t k = n - 2; k >= 0; k--)
            if (b[k] == '/' && b[k + 1] == '*') {
                i = k;
                break;
            }
        Py_ssize_t end = n - (b[n - 1] == '/' ? 2 : 3);
        if (i >= 0 && find2(b, i + 2, end, '*', '/') < 0) {
            cut_from = i;
            cut_to = end + 2;
        }
    }
    /* the text once cut, as two pieces: b[0:la] and b[rb:n] */
    Py_ssize_t la = cut_from >= 0 ? cut_from : n, rb = cut_from >= 0 ? cut_to : n;
    if (rb > n)
        rb = n;
    Py_ssize_t len = la + (n - rb);
    char *t = PyMem_Malloc((size_t)len + 1);
    if (t == NULL) {
        Py_XDECREF(enc);
        return PyErr_NoMemory();
    }
    memcpy(t, b, (size_t)la);
    memcpy(t + la, b + rb, (size_t)(n - rb));
    Py_XDECREF(enc);
    PyObject *result = NULL;
    Py_ssize_t quotes = 0, dquotes = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == '\\' || c == '$' || c == '\0' || c == '\x01')
            goto none;
        if ((c == '-' || c == '/') && i + 1 < len && t[i + 1] == (c == '-' ? '-' : '*'))
            goto none;
        if (c == '\'')
            quotes++;
        else if (c == '"')
            dquotes++;
    }
    Py_ssize_t m = len;  /* the key's length so far */
    if (quotes) {
        if (quotes & 1)
            goto none;
        /* inside quotes: no '"'; each outside piece: an even number of '"' */
        int inside = 0;
        Py_ssize_t piece_dq = 0, w = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            char c = t[i];
            if (c == '\'') {
                if (!inside) {
                    if (dquotes && (piece_dq & 1))
                        goto none;
                    t[w++] = '\x01';
                }
                inside = !inside;
                piece_dq = 0;
                continue;
            }
            if (inside) {
                if (c == '"' && dquotes)
                    goto none;
                continue;
            }
            if (c == '"')
                piece_dq++;
            t[w++] = c;
        }
        if (dquotes && (piece_dq & 1))
            goto none;
        /* "\x01".join(outside): one \x01 between consecutive outside pieces, i.e. one
           per pair of quotes; the loop wrote one at each opening quote */
        m = w;
    }
    /* digits inside "quoted identifiers" of the key */
    {
        int in_ident = 0;
        for (Py_ssize_t i = 0; i < m; i++) {
            char c = t[i];
            if (c == '"')
                in_ident = !in_ident;
            else if (in_ident && c >= '0' && c <= '9')
                goto none;
        }
    }
    for (Py_ssize_t i = 0; i < m; i++)
        if (t[i] >= '0' && t[i] <= '9')
            t[i] = '\0';
    result = PyBytes_FromStringAndSize(t, m);
    PyMem_Free(t);
    return result;
none:
    PyMem_Free(t);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"literal_key", (PyCFunction)literal_key, METH_O,
     "literal_key(sql: str) -> bytes | None: auditor.fingerprint.literal_key, compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "auditor._speedups",
    "The log engine's hot loops, compiled (see auditor/_speedups.c).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    if (STR_USER == NULL) {
        STR_USER = PyUnicode_InternFromString("user");
        STR_APP = PyUnicode_InternFromString("app");
        STR_MUTED = PyUnicode_InternFromString("muted");
        STR_SEEN = PyUnicode_InternFromString("seen");
        STR_QMARK = PyUnicode_InternFromString("?");
        STR_NL = PyUnicode_InternFromString("\n");
        if (!STR_USER || !STR_APP || !STR_MUTED || !STR_SEEN || !STR_QMARK || !STR_NL)
            return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    static const char *names[OP__COUNT] = {
        "LIT", "SPACES", "ANY", "HOST_R", "DIGITS1", "DIGITS0", "TS_S", "TS_MS", "EPOCH",
        "SQLSTATE", "SESSION", "VXID", "QID", "OPT", "OPT_END", "LEVEL"};
    for (int k = 0; k < OP__COUNT; k++)
        if (PyModule_AddIntConstant(m, names[k], k) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
