/* dynapot._fastpath: the sensor's receive thread, in C.
 *
 * Why C: a Python process that wakes for a frame runs its code cold, and a ping answered
 * from Python took 4-5x the round trip of a real host on the same bridge (a blocking
 * Python loop with nothing else in it still took 2.8x; the same loop in C, 1.1-1.4x).
 * So one native thread, which never takes the GIL, reads the raw socket:
 *
 *   - it answers ARP requests, ICMP echo requests and ordinary SYNs to open ports for the
 *     hosts Python registered, by the same rules as dynapot.netstack.arp and the
 *     personality's echo_reply and SYN/ACK (tests/unit/test_fastpath.py checks C against
 *     Python byte for byte); nmap's probes, repeated SYNs and anything unusual are left to
 *     Python, which adopts the connections of the SYNs answered here;
 *   - it runs the checks of claimed addresses (dynapot.netstack.arpcheck's rules): evidence
 *     that another machine uses one (ARP or IPv4 from it with another MAC, not a router's)
 *     starts an ARP probe for it, and an answer from another MAC within the check's window
 *     silences the address here at once; Python, perhaps seconds behind, gives it back;
 *   - it queues every frame, answered or not, for Python, which logs it and runs TCP, UDP and
 *     everything else. A frame's `answered` flag is the thread's decision, so exactly one of
 *     the two ever replies; its note says what it meant to the address checks.
 *
 * The queue is bounded (frames and bytes); a full queue drops and counts, as a full
 * socket buffer would. An eventfd tells Python's event loop that frames wait.
 * IP ID counters and ISN generators, which Python uses too, are `Counter` (atomic) and
 * `Isn` (locked) objects.
 *
 * Misuse from Python must not crash the process either: objects are usable only once
 * initialised (and initialised once), recipes are checked before the thread sees them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 65536
#define RECV_TIMEOUT_US 100000 /* the thread checks its stop flag this often */

/* ------------------------------------------------------------------ Counter */

typedef struct {
    PyObject_HEAD
    uint32_t value; /* only the low 16 bits are an IP ID; the rest wraps harmlessly */
} CounterObject;

static uint32_t counter_advance(CounterObject *c, uint32_t step) {
    return __atomic_fetch_add(&c->value, step, __ATOMIC_RELAXED);
}

static int Counter_init(CounterObject *self, PyObject *args, PyObject *kw) {
    unsigned long value = 0;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|k", names, &value)) return -1;
    __atomic_store_n(&self->value, (uint32_t)(value & 0xFFFF), __ATOMIC_RELAXED);
    return 0;
}

static PyObject *Counter_advance(CounterObject *self, PyObject *arg) {
    unsigned long step = PyLong_AsUnsignedLongMask(arg);
    if (step == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    return PyLong_FromUnsignedLong(counter_advance(self, (uint32_t)step) & 0xFFFF);
}

static PyObject *Counter_get_value(CounterObject *self, void *closure) {
    return PyLong_FromUnsignedLong(__atomic_load_n(&self->value, __ATOMIC_RELAXED) & 0xFFFF);
}

static int Counter_set_value(CounterObject *self, PyObject *arg, void *closure) {
    if (arg == NULL) {
        PyErr_SetString(PyExc_AttributeError, "value cannot be deleted");
        return -1;
    }
    unsigned long value = PyLong_AsUnsignedLongMask(arg);
    if (value == (unsigned long)-1 && PyErr_Occurred()) return -1;
    __atomic_store_n(&self->value, (uint32_t)(value & 0xFFFF), __ATOMIC_RELAXED);
    return 0;
}

static PyMethodDef Counter_methods[] = {
    {"advance", (PyCFunction)Counter_advance, METH_O,
     "advance(step) -> the value before, atomically (mod 65536)"},
    {NULL}};
static PyGetSetDef Counter_getset[] = {
    {"value", (getter)Counter_get_value, (setter)Counter_set_value, "the counter (0..65535)", NULL},
    {NULL}};

static PyTypeObject CounterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynapot._fastpath.Counter",
    .tp_doc = "An IP ID counter shared by Python and the receive thread (atomic).",
    .tp_basicsize = sizeof(CounterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Counter_init,
    .tp_methods = Counter_methods,
    .tp_getset = Counter_getset,
};

/* ------------------------------------------------------------------ Isn */

#define MAX_PATTERN 64

/* The personality engine's ISN generator (engine._PyIsn, same arithmetic): grows by g * n_k
 * per 100 ms, n_k cycling through a pattern. Shared by Python and the thread, so locked.
 * Its lock exists from allocation (Isn_new); until __init__ succeeds (once) `n` is 0 and the
 * generator never moves, and no recipe accepts it. */
typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    uint64_t g;
    uint32_t value;
    double last;
    int k, n;
    int64_t pattern[MAX_PATTERN];
} IsnObject;

static uint32_t isn_next(IsnObject *o, double now) {
    pthread_mutex_lock(&o->lock);
    if (o->n < 1) { /* not initialised: no pattern to step through */
        uint32_t value = o->value;
        pthread_mutex_unlock(&o->lock);
        return value;
    }
    double dt = now - o->last;
    o->last = now;
    int64_t n = o->pattern[o->k];
    o->k = (o->k + 1) % o->n;
    if (n) {
        /* Python's round(): ties to even, which nearbyint does in the default rounding mode;
         * clamped where a double no longer fits an int64 (only absurd clocks get there) */
        double scaled = dt > 0 ? nearbyint((double)n * dt * 10.0) : (double)n;
        int64_t units = scaled >= 9.2e18 ? INT64_MAX : scaled > -9.2e18 ? (int64_t)scaled : 1;
        o->value = (uint32_t)(o->value + o->g * (uint64_t)(units > 0 ? units : 1));
    }
    uint32_t value = o->value;
    pthread_mutex_unlock(&o->lock);
    return value;
}

static PyObject *Isn_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    IsnObject *self = (IsnObject *)type->tp_alloc(type, 0);
    if (self) pthread_mutex_init(&self->lock, NULL);
    return (PyObject *)self;
}

static void Isn_dealloc(IsnObject *self) {
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Isn_init(IsnObject *self, PyObject *args, PyObject *kw) {
    unsigned long long g, start;
    PyObject *pattern;
    double now;
    static char *names[] = {"g", "pattern", "start", "now", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KOKd", names, &g, &pattern, &start, &now)) return -1;
    pthread_mutex_lock(&self->lock);
    int ready = self->n > 0;
    pthread_mutex_unlock(&self->lock);
    if (ready) { /* a recipe may share it with the receive thread: its sequence is for life */
        PyErr_SetString(PyExc_TypeError, "an Isn is initialised once");
        return -1;
    }
    PyObject *seq = PySequence_Fast(pattern, "pattern must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_PATTERN) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "pattern must have 1 to 64 entries");
        return -1;
    }
    int64_t values[MAX_PATTERN];
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        values[i] = v;
    }
    Py_DECREF(seq);
    pthread_mutex_lock(&self->lock);
    memcpy(self->pattern, values, (size_t)n * sizeof values[0]);
    self->g = g, self->value = (uint32_t)start, self->last = now, self->k = 0, self->n = (int)n;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static int isn_ready(IsnObject *self) {
    pthread_mutex_lock(&self->lock);
    int ready = self->n > 0;
    pthread_mutex_unlock(&self->lock);
    return ready;
}

static PyObject *Isn_next(IsnObject *self, PyObject *arg) {
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    if (!isn_ready(self)) {
        PyErr_SetString(PyExc_ValueError, "Isn not initialised");
        return NULL;
    }
    return PyLong_FromUnsignedLong(isn_next(self, now));
}

static PyObject *Isn_get_value(IsnObject *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    uint32_t value = self->value;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLong(value);
}

static int Isn_set_value(IsnObject *self, PyObject *arg, void *closure) {
    if (arg == NULL) {
        PyErr_SetString(PyExc_AttributeError, "value cannot be deleted");
        return -1;
    }
    unsigned long value = PyLong_AsUnsignedLongMask(arg);
    if (value == (unsigned long)-1 && PyErr_Occurred()) return -1;
    pthread_mutex_lock(&self->lock);
    self->value = (uint32_t)value;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static PyMethodDef Isn_methods[] = {
    {"next", (PyCFunction)Isn_next, METH_O, "next(now) -> the ISN for a SYN answered at monotonic time now"},
    {NULL}};
static PyGetSetDef Isn_getset[] = {
    {"value", (getter)Isn_get_value, (setter)Isn_set_value, "the last ISN", NULL}, {NULL}};

static PyTypeObject IsnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynapot._fastpath.Isn",
    .tp_doc = "Isn(g, pattern, start, now): an ISN generator shared by Python and the receive thread.",
    .tp_basicsize = sizeof(IsnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Isn_new,
    .tp_init = (initproc)Isn_init,
    .tp_dealloc = (destructor)Isn_dealloc,
    .tp_methods = Isn_methods,
    .tp_getset = Isn_getset,
};

/* ------------------------------------------------------------------ host table */

enum { IPID_CONST = 1, IPID_RD = 2, IPID_INC = 3 };  /* as the personality engine numbers them */
enum { DF_NO = 0, DF_YES = 1, DF_SAME = 2, DF_OPPOSITE = 3 };

/* One IP ID sequence class (engine._IpId): a constant, RD jumps, or steps on a counter. */
typedef struct {
    uint8_t kind;
    uint16_t const_id, low, high;
    CounterObject *counter; /* strong reference, or NULL for a constant */
} IpIdRule;

/* The SYN/ACK for an ordinary SYN offering one set of options (engine._build_ordinary). */
typedef struct {
    uint8_t present, flags, ttl, df, has_ts, ts_val, ts_ecr, olen, ts_at;
    uint16_t window;
    uint8_t opts[40]; /* padded; the 8 timestamp bytes at ts_at are filled per packet */
} SynTemplate;

typedef struct {
    SynTemplate tpl[8]; /* by key: timestamps | window scale << 1 | SACK << 2 */
    IpIdRule id;
    IsnObject *isn;     /* strong reference */
    double hz;          /* timestamp clock rate; < 0: the host sends no timestamps */
    uint64_t ts_base;
    double epoch;
    size_t nports;
    uint16_t ports[];   /* open TCP ports, sorted */
} TcpRecipe;

typedef struct {
    uint32_t ip;     /* 0: empty slot; TOMBSTONE: deleted */
    uint8_t mac[6];
    uint8_t bound;   /* claimed: answer ARP (an unbound entry is an address still being probed) */
    uint8_t echo;    /* answer echo requests with the recipe below */
    uint8_t ttl, df_mode;
    int16_t code;    /* >= 0: this code; -1: the request's; -2: the request's + 1 */
    IpIdRule echo_id;
    TcpRecipe *tcp;  /* answer ordinary SYNs to open ports, or NULL */
    uint64_t rng;
    /* the address check (see "address checks" below) */
    int64_t check_ms;     /* when the last check of this address started (ms) */
    uint8_t checked;      /* a check was ever started */
    uint8_t silenced;     /* another machine answered a check: no longer ours to answer for */
    uint8_t other_mac[6]; /* ... from this MAC */
} Host;

#define TOMBSTONE 0xFFFFFFFFu

typedef struct {
    Host *slots;
    size_t capacity, used; /* used counts live entries and tombstones */
} Table;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static Host *table_find(Table *t, uint32_t ip) {
    if (!t->capacity || ip == 0 || ip == TOMBSTONE) return NULL;
    size_t mask = t->capacity - 1, i = mix64(ip) & mask;
    for (;;) {
        Host *h = &t->slots[i];
        if (h->ip == ip) return h;
        if (h->ip == 0) return NULL;
        i = (i + 1) & mask;
    }
}

static int table_grow(Table *t) {
    /* sized for the live entries (tombstones are dropped), so add/remove churn cannot grow it */
    size_t live = 0, capacity = 1024;
    for (size_t i = 0; i < t->capacity; i++) live += t->slots[i].ip != 0 && t->slots[i].ip != TOMBSTONE;
    while (capacity < (live + 1) * 2) capacity *= 2;
    Host *slots = calloc(capacity, sizeof(Host));
    if (!slots) return -1;
    for (size_t i = 0; i < t->capacity; i++) {
        Host *h = &t->slots[i];
        if (h->ip == 0 || h->ip == TOMBSTONE) continue;
        size_t j = mix64(h->ip) & (capacity - 1);
        while (slots[j].ip) j = (j + 1) & (capacity - 1);
        slots[j] = *h;
    }
    free(t->slots);
    t->slots = slots, t->capacity = capacity, t->used = live;
    return 0;
}

static Host *table_insert(Table *t, uint32_t ip) {
    Host *h = table_find(t, ip);
    if (h) return h;
    if ((t->used + 1) * 4 > t->capacity * 3 && table_grow(t) < 0) return NULL;
    size_t mask = t->capacity - 1, i = mix64(ip) & mask;
    while (t->slots[i].ip != 0 && t->slots[i].ip != TOMBSTONE) i = (i + 1) & mask;
    h = &t->slots[i];
    if (h->ip == 0) t->used++;
    memset(h, 0, sizeof *h);
    h->ip = ip;
    h->rng = mix64(ip ^ 0x9e3779b97f4a7c15ULL) | 1;
    return h;
}

/* ------------------------------------------------------------------ frame queue */

typedef struct Item {
    struct Item *next;
    uint32_t len, reply_len; /* the frame, then the reply sent for it (reply_len 0: none) */
    uint8_t checksums_ok;
    uint8_t note;            /* what the frame meant to an address check (NOTE_*) */
    uint8_t data[];
} Item;

#define ROUTER_SLOTS 64
#define MAX_NETWORKS 16

typedef struct {
    PyObject_HEAD
    int fd, event_fd;
    pthread_t thread;
    int running;
    int stop;                 /* atomic */
    pthread_mutex_t lock;     /* guards table, queue and counters */
    Table table;
    Item *head, *tail;
    size_t queued, queued_bytes, max_frames, max_bytes;
    uint64_t received, answered_arp, answered_echo, answered_syn, silenced, dropped, send_errors, recv_errors;
    /* address checks: started, evidence during one, evidence over a limit, routed, probes noted */
    uint64_t checks, check_busy, check_limited, routed, probes_noted;
    int64_t check_tat;        /* the global limit (GCRA): when the next check is due, ms */
    uint8_t routers[ROUTER_SLOTS][6];
    int nrouters, router_next;
    struct { uint32_t net, mask; } networks[MAX_NETWORKS];
    int nnetworks;
    uint32_t gateway;
    struct Recent *recent;    /* SYNs seen lately, by 4-tuple: a repeat is Python's to answer */
    uint16_t probe_windows[32];
    int nprobe_windows;
} ResponderObject;

/* A SYN seen lately. A retransmitted SYN, or a new one on a 4-tuple Python may still hold,
 * must be answered from the connection Python has, never with a fresh ISN from here. */
typedef struct Recent {
    uint32_t src, dst, ports, when_ms;
} Recent;
#define RECENT_SLOTS (1u << 18)
/* Frames waiting for Python beyond which SYNs are left to Python to answer, like a listen
 * backlog: a connection the C thread completed is one Python will see soon, not seconds later
 * (what it has not seen yet is lost in a crash). */
#define SYN_BACKLOG 1024u
#define RECENT_MS 120000u /* longer than Python keeps a half-open connection */

/* ------------------------------------------------------------------ decisions (pure) */

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }

static uint64_t sum16(const uint8_t *p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint64_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)s;
}

static uint64_t xorshift(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *state = x;
}

static uint16_t next_ip_id(IpIdRule *r, uint64_t *rng) {
    if (r->kind == IPID_INC && r->counter) {
        uint32_t step = r->low;
        if (r->high != step) {
            step += (uint32_t)(xorshift(rng) % (uint32_t)(r->high - r->low + 1));
            if (step % 256 == 0) step += 1; /* nmap reads multiples of 256 as broken increments */
        }
        return (uint16_t)(counter_advance(r->counter, step) + 1);
    }
    if (r->kind == IPID_RD && r->counter) {
        uint32_t jump = 20001 + (uint32_t)(xorshift(rng) % 25535);
        return (uint16_t)(counter_advance(r->counter, jump) + jump);
    }
    return r->const_id;
}

static void host_clear(Host *h, CounterObject **counters, PyObject **isn, TcpRecipe **tcp) {
    /* detach what needs the GIL to release; the caller frees it after unlocking */
    counters[0] = h->echo_id.counter, h->echo_id.counter = NULL;
    counters[1] = h->tcp ? h->tcp->id.counter : NULL;
    *isn = h->tcp ? (PyObject *)h->tcp->isn : NULL;
    *tcp = h->tcp, h->tcp = NULL;
}

static void release_detached(CounterObject **counters, PyObject *isn, TcpRecipe *tcp) {
    Py_XDECREF(counters[0]);
    Py_XDECREF(counters[1]);
    Py_XDECREF(isn);
    free(tcp);
}

static int bad_sender_ip(uint32_t ip) { return ip == 0 || ip == 0xFFFFFFFFu || (ip >> 28) == 0xE; }

static const uint8_t ARP_HEAD[6] = {0, 1, 8, 0, 6, 4};
static const uint8_t ZERO_MAC[6] = {0};

/* An ARP reply for `f`, by dynapot.netstack.arp's rules; its length, or 0. Lock held. */
static size_t decide_arp(Table *t, const uint8_t *f, size_t n, uint8_t *out) {
    if (n < 14 + 28 || memcmp(f + 14, ARP_HEAD, 6) != 0) return 0;
    const uint8_t *a = f + 14;
    uint16_t op = be16(a + 6);
    const uint8_t *sha = a + 8, *tha_unused = a + 18;
    (void)tha_unused;
    uint32_t spa = be32(a + 14), tpa = be32(a + 24);
    if (op != 1) return 0;                                      /* replies only ever tell us things */
    if ((sha[0] & 1) || memcmp(sha, ZERO_MAC, 6) == 0) return 0; /* bogus sender */
    Host *sender = table_find(t, spa);
    if (sender) return 0; /* one of our addresses (claimed or still probed) speaking: Python decides */
    Host *h = table_find(t, tpa);
    if (!h || !h->bound) return 0;
    if (spa == 0 || bad_sender_ip(spa)) return 0;               /* probes are never answered */
    if (memcmp(f + 6, sha, 6) != 0) return 0;                   /* spoofed requester */
    memcpy(out, sha, 6);
    memcpy(out + 6, h->mac, 6);
    out[12] = 0x08, out[13] = 0x06;
    memcpy(out + 14, ARP_HEAD, 6);
    put16(out + 20, 2);
    memcpy(out + 22, h->mac, 6);
    put32(out + 28, tpa);
    memcpy(out + 32, sha, 6);
    put32(out + 38, spa);
    return 42;
}

/* The IPv4 header of frame `f` as packets.parse_ipv4 accepts it (its checksum checked when `ok`):
 * the header, its length and the packet's total length; NULL for anything else. */
static const uint8_t *ipv4_header(const uint8_t *f, size_t n, int ok, size_t *hl_out, size_t *total_out) {
    if (n < 14 + 20) return NULL;
    const uint8_t *ip = f + 14;
    size_t avail = n - 14, hl = (size_t)(ip[0] & 0x0F) * 4, total = be16(ip + 2);
    if (ip[0] >> 4 != 4 || hl < 20 || hl > avail || total < hl || total > avail) return NULL;
    if (ok && sum16(ip, hl) % 0xFFFF) return NULL;
    *hl_out = hl, *total_out = total;
    return ip;
}

/* An echo reply for `f`, by the personality's echo_reply; its length, or 0. Lock held. */
static size_t decide_echo(Table *t, const uint8_t *f, size_t n, uint8_t *out) {
    size_t hl, total;
    const uint8_t *ip = ipv4_header(f, n, 1, &hl, &total);
    if (!ip || ip[9] != 1 || total < hl + 8) return 0;
    uint16_t frag = be16(ip + 6);
    if (frag & 0x3FFF) return 0; /* fragments are Python's to drop */
    uint32_t src = be32(ip + 12), dst = be32(ip + 16);
    Host *h = table_find(t, dst);
    if (!h || !h->bound || !h->echo || memcmp(f, h->mac, 6) != 0) return 0;
    Host *sender = table_find(t, src);
    if (sender) return 0; /* one of our addresses as the source: Python decides */
    uint32_t top = src >> 24;
    if (top == 0 || top == 127 || top >= 224 || src == dst) return 0;
    const uint8_t *icmp = ip + hl;
    size_t icmp_len = total - hl;
    if (icmp[0] != 8) return 0;
    uint64_t x = sum16(icmp, icmp_len);
    if (x == 0 || x % 0xFFFF) return 0; /* bad ICMP checksum (as parse_icmp tests it) */

    int df = h->df_mode == DF_YES || (h->df_mode == DF_SAME && (frag & 0x4000)) ||
             (h->df_mode == DF_OPPOSITE && !(frag & 0x4000));
    uint8_t code = h->code >= 0 ? (uint8_t)h->code : h->code == -1 ? icmp[1] : (uint8_t)(icmp[1] + 1);
    uint8_t *oip = out + 14, *oicmp = oip + 20;
    size_t out_total = 20 + icmp_len;
    memcpy(out, f + 6, 6);
    memcpy(out + 6, h->mac, 6);
    out[12] = 0x08, out[13] = 0x00;
    /* ICMP: type 0, the code, ident, seq and payload as received */
    memcpy(oicmp, icmp, icmp_len);
    oicmp[0] = 0, oicmp[1] = code, oicmp[2] = oicmp[3] = 0;
    put16(oicmp + 2, (uint16_t)~fold(sum16(oicmp, icmp_len)));
    /* IPv4 without options, checksummed as build_ipv4 does */
    oip[0] = 0x45, oip[1] = ip[1];
    put16(oip + 2, (uint16_t)out_total);
    put16(oip + 4, next_ip_id(&h->echo_id, &h->rng));
    put16(oip + 6, df ? 0x4000 : 0);
    oip[8] = h->ttl, oip[9] = 1, oip[10] = oip[11] = 0;
    put32(oip + 12, dst);
    put32(oip + 16, src);
    uint64_t hs = sum16(oip, 20) % 0xFFFF;
    put16(oip + 10, hs ? (uint16_t)(0xFFFF - hs) : 0);
    return 14 + out_total;
}

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock of Python's time.monotonic() */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int port_open(const TcpRecipe *tcp, uint16_t port) {
    size_t lo = 0, hi = tcp->nports;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tcp->ports[mid] == port) return 1;
        if (tcp->ports[mid] < port) lo = mid + 1; else hi = mid;
    }
    return 0;
}

/* The options an ordinary SYN offers, read as packets.parse_tcp_options reads them. */
typedef struct {
    int ts, ws, sack;
    uint32_t tsval;
} Offered;

static void parse_offered(const uint8_t *o, size_t n, Offered *out) {
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == 0) break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n) break;
        size_t len = o[i + 1];
        if (len < 2 || i + len > n) break;
        if (kind == 3 && len == 3) out->ws = 1;
        else if (kind == 4 && len == 2) out->sack = 1;
        else if (kind == 8 && len == 10) out->ts = 1, out->tsval = be32(o + i + 2);
        i += len;
    }
}

/* Monotonic seconds as 32-bit milliseconds (they wrap; the SYN memory compares differences). */
static uint32_t ms32(double now) {
    return now >= 0 && now < 1.8e16 ? (uint32_t)(uint64_t)(now * 1000.0) : 0;
}

static Recent *recent_slot(ResponderObject *r, uint32_t src, uint32_t dst, uint32_t ports) {
    return &r->recent[mix64(((uint64_t)src << 32 | dst) ^ mix64(ports)) & (RECENT_SLOTS - 1)];
}

/* A SYN/ACK for an ordinary SYN to an open port, by the personality's rules; its length, or 0.
 * Lock held. */
static size_t decide_syn(ResponderObject *r, const uint8_t *f, size_t n, int ok, uint8_t *out, double now) {
    Table *t = &r->table;
    size_t hl, total;
    const uint8_t *ip = ipv4_header(f, n, ok, &hl, &total);
    if (!ip || ip[9] != 6 || total < hl + 20 || (be16(ip + 6) & 0x3FFF)) return 0;
    const uint8_t *tcp = ip + hl;
    if (!(tcp[13] & 0x02)) return 0; /* not a SYN: Python's */
    uint32_t src = be32(ip + 12), dst = be32(ip + 16);
    Host *h = table_find(t, dst);
    if (!h) return 0;
    size_t tlen = total - hl;
    /* A SYN whose checksum is wrong is dropped by Python too and holds no flow: it must not take
     * the memory of one (a forged one would evict a real SYN's slot, or claim a 4-tuple) */
    if (ok && (sum16(tcp, tlen) + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + tlen) %
                  0xFFFF)
        return 0;
    /* Every SYN to an address of ours is remembered, whoever answers it (Python answers a host's
     * first SYN, before its recipe exists): a repeat goes to Python, which knows the flow. */
    uint32_t ports = be32(tcp), now_ms = ms32(now);
    Recent *seen = recent_slot(r, src, dst, ports);
    int repeat = seen->src == src && seen->dst == dst && seen->ports == ports &&
                 (uint32_t)(now_ms - seen->when_ms) < RECENT_MS;
    seen->src = src, seen->dst = dst, seen->ports = ports, seen->when_ms = now_ms;
    if (repeat || !h->bound || !h->tcp || memcmp(f, h->mac, 6) != 0) return 0;
    if (r->queued >= SYN_BACKLOG) return 0; /* Python is behind: it answers, at its own pace */
    if (table_find(t, src)) return 0;
    uint32_t top = src >> 24;
    if (top == 0 || top == 127 || top >= 224 || src == dst) return 0;
    size_t off = (size_t)(tcp[12] >> 4) * 4;
    if (off < 20 || off != tlen) return 0;                   /* no data on the SYN */
    if (tcp[13] != 0x02 || (tcp[12] & 0x0F) || be16(tcp + 18)) return 0; /* plain SYN only */
    uint16_t window = be16(tcp + 14);
    for (int i = 0; i < r->nprobe_windows; i++)
        if (window == r->probe_windows[i]) return 0;         /* nmap's OS probes are Python's */
    TcpRecipe *rec = h->tcp;
    uint16_t sport = be16(tcp), dport = be16(tcp + 2);
    if (!port_open(rec, dport)) return 0;
    Offered offered;
    parse_offered(tcp + 20, off - 20, &offered);
    int key = (offered.ts && rec->hz >= 0) | offered.ws << 1 | offered.sack << 2;
    const SynTemplate *tpl = &rec->tpl[key];
    if (!tpl->present) return 0;

    /* as engine.HostPersonality: the ISN first, then the timestamp clock and the IP ID */
    uint32_t isn = isn_next(rec->isn, now);
    double ticks = rec->hz > 0 ? (now - rec->epoch) * rec->hz : 0.0;
    int64_t whole = ticks > -9.2e18 && ticks < 9.2e18 ? (int64_t)ticks : 0; /* absurd clocks only */
    uint32_t tsval = rec->hz > 0 ? (uint32_t)(rec->ts_base + (uint64_t)whole) : 0;
    uint8_t *oip = out + 14, *otcp = oip + 20;
    size_t tcp_len = 20 + tpl->olen, out_total = 20 + tcp_len;
    memcpy(out, f + 6, 6);
    memcpy(out + 6, h->mac, 6);
    out[12] = 0x08, out[13] = 0x00;
    put16(otcp, dport);
    put16(otcp + 2, sport);
    put32(otcp + 4, isn);
    put32(otcp + 8, be32(tcp + 4) + 1);
    otcp[12] = (uint8_t)(tcp_len << 2), otcp[13] = tpl->flags;
    put16(otcp + 14, tpl->window);
    otcp[16] = otcp[17] = otcp[18] = otcp[19] = 0;
    memcpy(otcp + 20, tpl->opts, tpl->olen);
    if (tpl->has_ts) {
        put32(otcp + 20 + tpl->ts_at, tpl->ts_val ? (tsval ? tsval : 1) : 0);
        put32(otcp + 24 + tpl->ts_at, tpl->ts_ecr ? (offered.ts ? offered.tsval : (tsval ? tsval : 1)) : 0);
    }
    oip[0] = 0x45, oip[1] = 0;
    put16(oip + 2, (uint16_t)out_total);
    put16(oip + 4, next_ip_id(&rec->id, &h->rng));
    put16(oip + 6, tpl->df ? 0x4000 : 0);
    oip[8] = tpl->ttl, oip[9] = 6, oip[10] = oip[11] = 0;
    put32(oip + 12, dst);
    put32(oip + 16, src);
    uint64_t hs = sum16(oip, 20) % 0xFFFF;
    put16(oip + 10, hs ? (uint16_t)(0xFFFF - hs) : 0);
    uint64_t ts = (sum16(otcp, tcp_len) + (dst >> 16) + (dst & 0xFFFF) + (src >> 16) + (src & 0xFFFF) + 6 +
                   tcp_len) % 0xFFFF;
    put16(otcp + 16, ts ? (uint16_t)(0xFFFF - ts) : 0);
    return 14 + out_total;
}

/* ------------------------------------------------------------------ address checks
 *
 * dynapot.netstack.arpcheck's rules, which the sensor applies in Python without this thread
 * (tests/unit/test_fastpath.py checks one against the other). One packet with a claimed address
 * as its source proves nothing (anyone can send it), so it only starts a check: an ARP probe for
 * the address from the host's own MAC (RFC 5227 2.1.1); a reply to it from another MAC within
 * CHECK_WINDOW_MS silences the address here at once and tells Python (NOTE_CONFIRMED), which
 * gives it back. Checks are limited per address and in total: never an ARP amplifier. */

enum {
    NOTE_NONE = 0,     /* nothing to do with a claimed address */
    NOTE_CHECK = 1,    /* evidence: a check started (the reply is its probe) */
    NOTE_CONFIRMED = 2, /* an answer to our check from another MAC: the address is silenced */
    NOTE_BUSY = 3,     /* evidence while a check of the address runs */
    NOTE_LIMITED = 4,  /* evidence, but a check now would exceed a limit */
    NOTE_ROUTED = 5,   /* IPv4 from a claimed address through a router: never evidence */
    NOTE_PROBED = 6,   /* an ARP probe for a claimed address from another MAC: noted only */
};
#define CHECK_WINDOW_MS 500     /* how long an answer to our probe counts */
#define CHECK_INTERVAL_MS 1000  /* one check per address per this */
#define CHECK_COST_MS 50        /* the global rate: one check per 50 ms on average (20/s) ... */
#define CHECK_BURST 20          /* ... in bursts of up to 20 */
#define TAT_START (INT64_MIN / 4)

static int bogus_mac(const uint8_t *mac) { return (mac[0] & 1) || memcmp(mac, ZERO_MAC, 6) == 0; }

/* The thread's clock in whole milliseconds (0 for clocks no check can use). */
static int64_t clock_ms(double now) { return now >= 0 && now < 1e12 ? (int64_t)(now * 1000.0) : 0; }

static int is_router(const ResponderObject *r, const uint8_t *mac) {
    for (int i = 0; i < r->nrouters; i++)
        if (memcmp(r->routers[i], mac, 6) == 0) return 1;
    return 0;
}

static void add_router(ResponderObject *r, const uint8_t *mac) {
    if (bogus_mac(mac) || is_router(r, mac)) return;
    if (r->nrouters < ROUTER_SLOTS) {
        memcpy(r->routers[r->nrouters++], mac, 6);
    } else { /* full: the oldest goes (a flood of forged routers costs only probes) */
        memcpy(r->routers[r->router_next], mac, 6);
        r->router_next = (r->router_next + 1) % ROUTER_SLOTS;
    }
}

/* A source only a router forwards: outside the interface's networks, not one of ours, and not
 * a source no router forwards (0/8, 127/8, 169.254/16, multicast and above). */
static int foreign(const ResponderObject *r, uint32_t src) {
    uint32_t top = src >> 24;
    if (!r->nnetworks || top == 0 || top == 127 || (src >> 16) == 0xA9FE || top >= 224) return 0;
    for (int i = 0; i < r->nnetworks; i++)
        if ((src & r->networks[i].mask) == r->networks[i].net) return 0;
    return table_find((Table *)&r->table, src) == NULL;
}

/* Routers are learned from every frame: IPv4 from a foreign source or from the gateway, ARP
 * from the gateway's address. Lock held. */
static void learn_router(ResponderObject *r, const uint8_t *f, size_t n) {
    uint16_t type = be16(f + 12);
    if (type == 0x0800 && n >= 34 && f[14] >> 4 == 4) {
        uint32_t src = be32(f + 26);
        if ((r->gateway && src == r->gateway) || foreign(r, src)) add_router(r, f + 6);
    } else if (type == 0x0806 && r->gateway && n >= 42 && memcmp(f + 14, ARP_HEAD, 6) == 0) {
        uint16_t op = be16(f + 20);
        if ((op == 1 || op == 2) && be32(f + 28) == r->gateway) add_router(r, f + 22);
    }
}

static int checking(const Host *h, int64_t ms) {
    return h->checked && ms >= h->check_ms && ms < h->check_ms + CHECK_WINDOW_MS;
}

/* Evidence against claimed host h: start a check (the probe in `out`), unless one runs or a
 * limit says no. Lock held. */
static size_t start_check(ResponderObject *r, Host *h, uint8_t *out, int64_t ms, uint8_t *note) {
    if (checking(h, ms)) {
        r->check_busy++, *note = NOTE_BUSY;
        return 0;
    }
    int64_t due = r->check_tat > ms ? r->check_tat : ms;
    if ((h->checked && ms >= h->check_ms && ms < h->check_ms + CHECK_INTERVAL_MS) ||
        due - ms > (int64_t)(CHECK_BURST - 1) * CHECK_COST_MS) {
        r->check_limited++, *note = NOTE_LIMITED;
        return 0;
    }
    r->check_tat = due + CHECK_COST_MS;
    h->checked = 1, h->check_ms = ms;
    r->checks++, *note = NOTE_CHECK;
    /* the probe, as netstack.arp.build_probe: broadcast, sender IP 0.0.0.0, our MAC */
    memset(out, 0xFF, 6);
    memcpy(out + 6, h->mac, 6);
    out[12] = 0x08, out[13] = 0x06;
    memcpy(out + 14, ARP_HEAD, 6);
    put16(out + 20, 1);
    memcpy(out + 22, h->mac, 6);
    put32(out + 28, 0);
    memset(out + 32, 0, 6);
    put32(out + 38, h->ip);
    return 42;
}

/* What frame `f` means to the address checks; the probe to send, in `out`, or 0. Lock held. */
static size_t guard(ResponderObject *r, const uint8_t *f, size_t n, int ok, uint8_t *out, double now,
                    uint8_t *note) {
    Table *t = &r->table;
    uint16_t type = be16(f + 12);
    if (type == 0x0806) {
        if (n < 14 + 28 || memcmp(f + 14, ARP_HEAD, 6) != 0) return 0;
        const uint8_t *a = f + 14, *sha = a + 8, *tha = a + 18;
        uint16_t op = be16(a + 6);
        if ((op != 1 && op != 2) || bogus_mac(sha)) return 0;
        uint32_t spa = be32(a + 14);
        Host *h = table_find(t, spa);
        if (h && h->bound) {
            if (memcmp(h->mac, sha, 6) == 0) return 0; /* ourselves, reflected */
            int64_t ms = clock_ms(now);
            if (op == 2 && checking(h, ms) && memcmp(tha, h->mac, 6) == 0) {
                /* the answer to our probe: another machine has the address */
                h->bound = 0, h->silenced = 1;
                memcpy(h->other_mac, sha, 6);
                r->silenced++, *note = NOTE_CONFIRMED;
                return 0;
            }
            return start_check(r, h, out, ms, note);
        }
        if (spa == 0 && op == 1) {
            h = table_find(t, be32(a + 24));
            if (h && h->bound && memcmp(h->mac, sha, 6) != 0) r->probes_noted++, *note = NOTE_PROBED;
        }
        return 0;
    }
    if (type != 0x0800) return 0;
    size_t hl, total;
    const uint8_t *ip = ipv4_header(f, n, ok, &hl, &total);
    if (!ip) return 0;
    Host *h = table_find(t, be32(ip + 12));
    if (!h || !h->bound || memcmp(h->mac, f + 6, 6) == 0 || bogus_mac(f + 6)) return 0;
    if (is_router(r, f + 6)) {
        r->routed++, *note = NOTE_ROUTED;
        return 0;
    }
    return start_check(r, h, out, clock_ms(now), note);
}

/* The thread's decision for one frame: the reply to send (its length, or 0), and its note. */
static size_t decide(ResponderObject *r, const uint8_t *f, size_t n, int checksums_ok, uint8_t *out,
                     double now, uint8_t *note) {
    *note = NOTE_NONE;
    if (n < 14) return 0;
    learn_router(r, f, n);
    size_t m = guard(r, f, n, checksums_ok, out, now, note);
    if (*note != NOTE_NONE) return m;
    uint16_t type = be16(f + 12);
    if (type == 0x0806) return decide_arp(&r->table, f, n, out);
    if (type != 0x0800 || n < 34) return 0;
    if (f[14 + 9] == 6) return decide_syn(r, f, n, checksums_ok, out, now);
    if (checksums_ok) return decide_echo(&r->table, f, n, out);
    return 0;
}

/* ------------------------------------------------------------------ the thread */

static void enqueue(ResponderObject *r, const uint8_t *f, size_t n, int ok, const uint8_t *reply, size_t m,
                    uint8_t note) {
    /* lock held. A check started or confirmed always reaches Python, full queue or not: Python
     * gives the address back on it (checks are rate-limited, so these few cannot grow it much) */
    int vital = note == NOTE_CHECK || note == NOTE_CONFIRMED;
    if (!vital && (r->queued >= r->max_frames || r->queued_bytes + n + m > r->max_bytes)) {
        r->dropped++;
        return;
    }
    Item *item = malloc(sizeof(Item) + n + m);
    if (!item) {
        r->dropped++;
        return;
    }
    item->next = NULL, item->len = (uint32_t)n, item->reply_len = (uint32_t)m;
    item->checksums_ok = (uint8_t)ok, item->note = note;
    memcpy(item->data, f, n);
    if (m) memcpy(item->data + n, reply, m);
    int was_empty = r->head == NULL;
    if (r->tail) r->tail->next = item; else r->head = item;
    r->tail = item;
    r->queued++, r->queued_bytes += n + m;
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(r->event_fd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is already non-zero, Python wakes anyway */
    }
}

static void *run(void *arg) {
    ResponderObject *r = arg;
    uint8_t *frame = malloc(MAX_FRAME), *reply = malloc(MAX_FRAME + 64);
    char control[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    if (!frame || !reply) {
        free(frame), free(reply);
        return NULL;
    }
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        struct iovec iov = {frame, MAX_FRAME};
        struct msghdr msg = {0};
        msg.msg_iov = &iov, msg.msg_iovlen = 1;
        msg.msg_control = control, msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(r->fd, &msg, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                pthread_mutex_lock(&r->lock);
                r->recv_errors++;
                pthread_mutex_unlock(&r->lock);
                usleep(1000); /* never spin on a broken socket */
            }
            continue;
        }
        int ok = 1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
                c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
                struct tpacket_auxdata aux;
                memcpy(&aux, CMSG_DATA(c), sizeof aux);
                if (aux.tp_status & TP_STATUS_CSUMNOTREADY) ok = 0;
            }
        }
        double now = monotonic_now();
        uint8_t note;
        pthread_mutex_lock(&r->lock);
        size_t m = decide(r, frame, (size_t)n, ok, reply, now, &note);
        pthread_mutex_unlock(&r->lock);
        /* sent outside the lock: the send carries the frame across the bridge, tens of us */
        int answered = m && send(r->fd, reply, m, MSG_DONTWAIT) == (ssize_t)m;
        int syn = !note && m && frame[14 + 9] == 6;
        pthread_mutex_lock(&r->lock);
        r->received++;
        if (m && !answered) {
            r->send_errors++;
        } else if (answered && !note) { /* (a check's probe is counted as a check) */
            if (be16(frame + 12) == 0x0806) r->answered_arp++;
            else if (syn) r->answered_syn++;
            else r->answered_echo++;
        }
        /* a SYN/ACK that could not be sent is still handed on: Python adopts the connection and
         * its retransmission timer sends the SYN/ACK again, as after any lost segment */
        enqueue(r, frame, (size_t)n, ok, reply, answered || syn ? m : 0, note);
        pthread_mutex_unlock(&r->lock);
    }
    free(frame), free(reply);
    return NULL;
}

/* ------------------------------------------------------------------ Responder */

/* A Responder exists in two states: allocated (Responder_new: no descriptor of its own, its lock
 * ready) and initialised (once, by __init__: the SYN memory, the eventfd). Every method but
 * stop() refuses an object that is not initialised, and dealloc frees only what it owns. */
static PyObject *Responder_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    ResponderObject *self = (ResponderObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->fd = -1, self->event_fd = -1;
    self->check_tat = TAT_START;
    pthread_mutex_init(&self->lock, NULL);
    return (PyObject *)self;
}

static int ready(ResponderObject *self) {
    if (self->recent) return 1;
    PyErr_SetString(PyExc_ValueError, "Responder not initialised");
    return 0;
}

static int Responder_init(ResponderObject *self, PyObject *args, PyObject *kw) {
    int fd;
    Py_ssize_t max_frames = 65536, max_bytes = 64 << 20;
    static char *names[] = {"fd", "max_frames", "max_bytes", NULL};
    if (self->recent) { /* the thread may be running on this state: it is set once */
        PyErr_SetString(PyExc_TypeError, "a Responder is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|nn", names, &fd, &max_frames, &max_bytes)) return -1;
    if (max_frames < 1 || max_bytes < MAX_FRAME) {
        PyErr_SetString(PyExc_ValueError, "max_frames must be >= 1 and max_bytes >= 65536");
        return -1;
    }
    int event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    Recent *recent = calloc(RECENT_SLOTS, sizeof(Recent));
    if (!recent) {
        close(event_fd);
        PyErr_NoMemory();
        return -1;
    }
    self->fd = fd, self->event_fd = event_fd, self->recent = recent;
    self->max_frames = (size_t)max_frames, self->max_bytes = (size_t)max_bytes;
    return 0;
}

static PyObject *Responder_start(ResponderObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    if (self->running) Py_RETURN_NONE;
    if (self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "no socket: this responder only decides (answer())");
        return NULL;
    }
    struct timeval tv = {0, RECV_TIMEOUT_US};
    int one = 1;
    if (setsockopt(self->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(self->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    __atomic_store_n(&self->stop, 0, __ATOMIC_RELAXED);
    int err = pthread_create(&self->thread, NULL, run, self);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->running = 1;
    Py_RETURN_NONE;
}

static PyObject *Responder_stop(ResponderObject *self, PyObject *unused) {
    if (self->running) {
        __atomic_store_n(&self->stop, 1, __ATOMIC_RELAXED);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL); /* bounded: the thread wakes every RECV_TIMEOUT_US */
        Py_END_ALLOW_THREADS
        self->running = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *Responder_take(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    Py_ssize_t limit = 256;
    if (!PyArg_ParseTuple(args, "|n", &limit)) return NULL;
    uint64_t drain;
    ssize_t rd = read(self->event_fd, &drain, sizeof drain); /* reset before looking: no lost wake-up */
    (void)rd;
    pthread_mutex_lock(&self->lock);
    Item *items = self->head, *last = NULL;
    Py_ssize_t count = 0;
    for (Item *i = items; i && count < limit; i = i->next) last = i, count++;
    if (last) {
        self->head = last->next;
        if (!self->head) self->tail = NULL;
        last->next = NULL;
        self->queued -= (size_t)count;
        for (Item *i = items; i; i = i->next) self->queued_bytes -= i->len + i->reply_len;
    }
    int more = self->head != NULL;
    pthread_mutex_unlock(&self->lock);
    if (more) { /* left for the next turn: keep the event loop awake */
        uint64_t one = 1;
        ssize_t w = write(self->event_fd, &one, sizeof one);
        (void)w;
    }
    PyObject *list = PyList_New(count);
    Py_ssize_t k = 0;
    for (Item *i = items; k < count;) {
        Item *next = i->next;
        if (list) {
            PyObject *reply = i->reply_len
                                  ? PyBytes_FromStringAndSize((char *)i->data + i->len, i->reply_len)
                                  : Py_NewRef(Py_None);
            PyObject *t = reply ? Py_BuildValue("(y#ONi)", (const char *)i->data, (Py_ssize_t)i->len,
                                                i->checksums_ok ? Py_True : Py_False, reply, (int)i->note)
                                : NULL;
            if (!t) Py_CLEAR(list);
            else PyList_SET_ITEM(list, k, t);
        }
        free(i);
        i = next, k++;
    }
    return list;
}

static int parse_mac(PyObject *obj, uint8_t mac[6]) {
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(obj, &data, &len) < 0) return -1;
    if (len != 6) {
        PyErr_SetString(PyExc_ValueError, "a MAC address is 6 bytes");
        return -1;
    }
    memcpy(mac, data, 6);
    return 0;
}

static PyObject *Responder_bind(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    unsigned long ip;
    PyObject *mac_obj;
    uint8_t mac[6];
    if (!PyArg_ParseTuple(args, "kO", &ip, &mac_obj) || parse_mac(mac_obj, mac) < 0) return NULL;
    if (ip == 0 || ip >= TOMBSTONE) {
        PyErr_SetString(PyExc_ValueError, "not a host address");
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    Host *h = table_insert(&self->table, (uint32_t)ip);
    if (h) memcpy(h->mac, mac, 6), h->bound = 1, h->silenced = 0;
    pthread_mutex_unlock(&self->lock);
    if (!h) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* reserve(ip): an address of ours not yet claimed (ARP-probed first): never answered for, but
 * frames from it are left to Python, which watches for conflicts. */
static PyObject *Responder_reserve(ResponderObject *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    unsigned long ip = PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    if (ip == 0 || ip >= TOMBSTONE) {
        PyErr_SetString(PyExc_ValueError, "not a host address");
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    Host *h = table_insert(&self->table, (uint32_t)ip);
    pthread_mutex_unlock(&self->lock);
    if (!h) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* unbind(ip): forget the address altogether (ARP, echo and SYN). */
static PyObject *Responder_unbind(ResponderObject *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    unsigned long ip = PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    CounterObject *counters[2] = {NULL, NULL};
    PyObject *isn = NULL;
    TcpRecipe *tcp = NULL;
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    if (h) {
        host_clear(h, counters, &isn, &tcp);
        memset(h, 0, sizeof *h);
        h->ip = TOMBSTONE;
    }
    pthread_mutex_unlock(&self->lock);
    release_detached(counters, isn, tcp);
    Py_RETURN_NONE;
}

static int parse_ip_id(PyObject *kind_obj, PyObject *const_obj, PyObject *low_obj, PyObject *high_obj,
                       PyObject *counter, IpIdRule *out) {
    long kind = PyLong_AsLong(kind_obj), const_id = PyLong_AsLong(const_obj);
    long low = PyLong_AsLong(low_obj), high = PyLong_AsLong(high_obj);
    if (PyErr_Occurred()) return -1;
    if ((kind != IPID_CONST && kind != IPID_RD && kind != IPID_INC) || const_id < 0 || const_id > 0xFFFF ||
        low < 0 || high < low || high > 0xFFFF ||
        (kind != IPID_CONST && !PyObject_TypeCheck(counter, &CounterType))) {
        PyErr_SetString(PyExc_ValueError, "bad IP ID rule");
        return -1;
    }
    out->kind = (uint8_t)kind, out->const_id = (uint16_t)const_id;
    out->low = (uint16_t)low, out->high = (uint16_t)high;
    out->counter = kind != IPID_CONST ? (CounterObject *)counter : NULL; /* borrowed until stored */
    return 0;
}

/* set_echo(ip, recipe or None); recipe = (ttl, df_mode, code, ipid_kind, const_id, low, high, counter) */
static PyObject *Responder_set_echo(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    unsigned long ip;
    PyObject *recipe;
    if (!PyArg_ParseTuple(args, "kO", &ip, &recipe)) return NULL;
    int ttl = 0, df_mode = 0, code = 0;
    IpIdRule id = {0};
    if (recipe != Py_None) {
        PyObject *kind, *const_id, *low, *high, *counter;
        if (!PyTuple_Check(recipe)) {
            PyErr_SetString(PyExc_TypeError, "an echo recipe is a tuple or None");
            return NULL;
        }
        if (!PyArg_ParseTuple(recipe, "iiiOOOOO", &ttl, &df_mode, &code, &kind, &const_id, &low, &high,
                              &counter))
            return NULL;
        if (ttl < 1 || ttl > 255 || df_mode < 0 || df_mode > 3 || code < -2 || code > 255) {
            PyErr_SetString(PyExc_ValueError, "bad echo recipe");
            return NULL;
        }
        if (parse_ip_id(kind, const_id, low, high, counter, &id) < 0) {
            if (PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "bad echo recipe");
            }
            return NULL;
        }
    }
    CounterObject *old = NULL;
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    if (h) {
        old = h->echo_id.counter;
        h->echo_id.counter = NULL;
        h->echo = recipe != Py_None;
        if (h->echo) {
            h->ttl = (uint8_t)ttl, h->df_mode = (uint8_t)df_mode, h->code = (int16_t)code;
            Py_XINCREF(id.counter);
            h->echo_id = id;
        }
    }
    pthread_mutex_unlock(&self->lock);
    Py_XDECREF(old);
    if (!h) {
        PyErr_SetString(PyExc_KeyError, "address not bound");
        return NULL;
    }
    Py_RETURN_NONE;
}

static int parse_template(PyObject *obj, SynTemplate *tpl) {
    /* (flags, window, ttl, df, prefix, suffix, has_ts, ts_val, ts_ecr) or None */
    memset(tpl, 0, sizeof *tpl);
    if (obj == Py_None) return 0;
    int flags, window, ttl, df, has_ts, ts_val, ts_ecr;
    Py_buffer prefix, suffix;
    if (!PyTuple_Check(obj) || !PyArg_ParseTuple(obj, "iiipy*y*ppp", &flags, &window, &ttl, &df, &prefix,
                                                 &suffix, &has_ts, &ts_val, &ts_ecr)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a SYN/ACK template is a tuple or None");
        return -1;
    }
    size_t olen = (size_t)prefix.len + (has_ts ? 8 : 0) + (size_t)suffix.len;
    int bad = flags < 0 || flags > 255 || !(flags & 0x02) || window < 0 || window > 0xFFFF || ttl < 1 ||
              ttl > 255 || olen > 40 || olen % 4 || (!has_ts && suffix.len);
    if (!bad) {
        tpl->present = 1, tpl->flags = (uint8_t)flags, tpl->window = (uint16_t)window;
        tpl->ttl = (uint8_t)ttl, tpl->df = (uint8_t)df, tpl->has_ts = (uint8_t)has_ts;
        tpl->ts_val = (uint8_t)ts_val, tpl->ts_ecr = (uint8_t)ts_ecr;
        tpl->olen = (uint8_t)olen, tpl->ts_at = (uint8_t)prefix.len;
        memcpy(tpl->opts, prefix.buf, (size_t)prefix.len);
        if (has_ts) memcpy(tpl->opts + prefix.len + 8, suffix.buf, (size_t)suffix.len);
    }
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&suffix);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "bad SYN/ACK template");
        return -1;
    }
    return 0;
}

/* set_tcp(ip, recipe or None): answer ordinary SYNs to the open ports.
 * recipe = (templates (8, by key), (ipid_kind, const_id, low, high, counter), isn, hz (< 0: no
 * timestamps), ts_base, epoch, open ports) */
static PyObject *Responder_set_tcp(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    unsigned long ip;
    PyObject *recipe;
    if (!PyArg_ParseTuple(args, "kO", &ip, &recipe)) return NULL;
    TcpRecipe *rec = NULL;
    if (recipe != Py_None) {
        PyObject *templates, *id_rule, *isn, *ports;
        double hz, epoch;
        unsigned long long ts_base;
        if (!PyTuple_Check(recipe)) {
            PyErr_SetString(PyExc_TypeError, "a TCP recipe is a tuple or None");
            return NULL;
        }
        if (!PyArg_ParseTuple(recipe, "O!O!O!dKdO", &PyTuple_Type, &templates, &PyTuple_Type, &id_rule,
                              &IsnType, &isn, &hz, &ts_base, &epoch, &ports))
            return NULL;
        if (!isfinite(hz) || !isfinite(epoch) || hz > 1e12 || !isn_ready((IsnObject *)isn)) {
            PyErr_SetString(PyExc_ValueError, "bad TCP recipe");
            return NULL;
        }
        PyObject *port_seq = PySequence_Fast(ports, "open ports must be a sequence");
        if (!port_seq) return NULL;
        Py_ssize_t nports = PySequence_Fast_GET_SIZE(port_seq);
        if (PyTuple_GET_SIZE(templates) != 8 || PyTuple_GET_SIZE(id_rule) != 5 || nports > 65536) {
            Py_DECREF(port_seq);
            PyErr_SetString(PyExc_ValueError, "bad TCP recipe");
            return NULL;
        }
        rec = calloc(1, sizeof(TcpRecipe) + (size_t)nports * sizeof(uint16_t));
        if (!rec) {
            Py_DECREF(port_seq);
            return PyErr_NoMemory();
        }
        int failed = 0;
        for (Py_ssize_t i = 0; i < nports && !failed; i++) {
            long port = PyLong_AsLong(PySequence_Fast_GET_ITEM(port_seq, i));
            if (port < 0 || port > 0xFFFF) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad port");
                failed = 1;
            } else {
                rec->ports[i] = (uint16_t)port;
            }
        }
        Py_DECREF(port_seq);
        for (int i = 0; i < 8 && !failed; i++) failed = parse_template(PyTuple_GET_ITEM(templates, i), &rec->tpl[i]) < 0;
        if (!failed)
            failed = parse_ip_id(PyTuple_GET_ITEM(id_rule, 0), PyTuple_GET_ITEM(id_rule, 1),
                                 PyTuple_GET_ITEM(id_rule, 2), PyTuple_GET_ITEM(id_rule, 3),
                                 PyTuple_GET_ITEM(id_rule, 4), &rec->id) < 0;
        if (failed) {
            free(rec);
            return NULL;
        }
        /* sorted for the binary search */
        for (Py_ssize_t i = 1; i < nports; i++)
            for (Py_ssize_t j = i; j > 0 && rec->ports[j - 1] > rec->ports[j]; j--) {
                uint16_t x = rec->ports[j];
                rec->ports[j] = rec->ports[j - 1], rec->ports[j - 1] = x;
            }
        rec->nports = (size_t)nports;
        rec->hz = hz, rec->ts_base = ts_base, rec->epoch = epoch;
        Py_INCREF(isn);
        rec->isn = (IsnObject *)isn;
        Py_XINCREF(rec->id.counter);
    }
    CounterObject *counters[2] = {NULL, NULL};
    PyObject *old_isn = NULL;
    TcpRecipe *old = NULL;
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    if (h) {
        old = h->tcp;
        counters[1] = old ? old->id.counter : NULL;
        old_isn = old ? (PyObject *)old->isn : NULL;
        h->tcp = rec;
    }
    pthread_mutex_unlock(&self->lock);
    release_detached(counters, old_isn, old);
    if (!h) {
        if (rec) {
            Py_XDECREF(rec->id.counter);
            Py_DECREF(rec->isn);
            free(rec);
        }
        PyErr_SetString(PyExc_KeyError, "address not bound");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* forget(src, sport, dst, dport): Python closed that connection; a new SYN on it is C's again. */
static PyObject *Responder_forget(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    unsigned long src, dst;
    unsigned int sport, dport;
    if (!PyArg_ParseTuple(args, "kIkI", &src, &sport, &dst, &dport)) return NULL;
    uint32_t ports = (uint32_t)(sport & 0xFFFF) << 16 | (dport & 0xFFFF);
    pthread_mutex_lock(&self->lock);
    Recent *seen = recent_slot(self, (uint32_t)src, (uint32_t)dst, ports);
    if (seen->src == (uint32_t)src && seen->dst == (uint32_t)dst && seen->ports == ports) seen->when_ms -= RECENT_MS;
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

/* set_probe_windows(windows): SYNs with these windows (nmap's OS probes) are always Python's. */
static PyObject *Responder_set_probe_windows(ResponderObject *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    PyObject *seq = PySequence_Fast(arg, "windows must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint16_t windows[32];
    if (n > 32) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "at most 32 probe windows");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long w = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (w < 0 || w > 0xFFFF) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad window");
            return NULL;
        }
        windows[i] = (uint16_t)w;
    }
    Py_DECREF(seq);
    pthread_mutex_lock(&self->lock);
    memcpy(self->probe_windows, windows, sizeof windows);
    self->nprobe_windows = (int)n;
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

/* The thread's decision for one frame, without IO, and its note (for answer() and judge()).
 * `now` stands for the monotonic clock. It has the thread's side effects: IP IDs, ISNs, the
 * memory of SYNs seen, routers and address checks move on. */
static PyObject *decide_py(ResponderObject *self, PyObject *args, PyObject *kw, int with_note) {
    Py_buffer frame;
    int ok = 1;
    PyObject *now_obj = Py_None;
    static char *names[] = {"frame", "checksums_ok", "now", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|pO", names, &frame, &ok, &now_obj)) return NULL;
    double now = now_obj == Py_None ? monotonic_now() : PyFloat_AsDouble(now_obj);
    if ((now == -1.0 && PyErr_Occurred()) || !isfinite(now)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "now must be a finite number");
        PyBuffer_Release(&frame);
        return NULL;
    }
    uint8_t *out = malloc(MAX_FRAME + 64);
    if (!out) {
        PyBuffer_Release(&frame);
        return PyErr_NoMemory();
    }
    size_t n = 0;
    uint8_t note = NOTE_NONE;
    if (frame.len <= MAX_FRAME) {
        pthread_mutex_lock(&self->lock);
        n = decide(self, frame.buf, (size_t)frame.len, ok, out, now, &note);
        pthread_mutex_unlock(&self->lock);
    }
    PyBuffer_Release(&frame);
    PyObject *result = n ? PyBytes_FromStringAndSize((char *)out, (Py_ssize_t)n) : Py_NewRef(Py_None);
    free(out);
    if (!with_note || !result) return result;
    return Py_BuildValue("(Ni)", result, (int)note);
}

/* answer(frame, checksums_ok=True, now=None) -> the reply the thread sends for it, or None. */
static PyObject *Responder_answer(ResponderObject *self, PyObject *args, PyObject *kw) {
    if (!ready(self)) return NULL;
    return decide_py(self, args, kw, 0);
}

/* judge(frame, checksums_ok=True, now=None) -> (reply or None, note). */
static PyObject *Responder_judge(ResponderObject *self, PyObject *args, PyObject *kw) {
    if (!ready(self)) return NULL;
    return decide_py(self, args, kw, 1);
}

/* set_networks(networks, gateway): the interface's networks, as (address, prefix length), and
 * the gateway's address (0: none); a MAC sending IPv4 from outside them, or from the gateway,
 * is a router's. The routers learned so far stay. */
static PyObject *Responder_set_networks(ResponderObject *self, PyObject *args) {
    if (!ready(self)) return NULL;
    PyObject *networks;
    unsigned long gateway;
    if (!PyArg_ParseTuple(args, "Ok", &networks, &gateway)) return NULL;
    PyObject *seq = PySequence_Fast(networks, "networks must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    uint32_t nets[MAX_NETWORKS], masks[MAX_NETWORKS];
    if (count > MAX_NETWORKS || gateway > 0xFFFFFFFFul) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "at most 16 networks, and a gateway that is an IPv4 address");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned long address;
        int prefix;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "ki", &address, &prefix) || address > 0xFFFFFFFFul ||
            prefix < 0 || prefix > 32) {
            Py_DECREF(seq);
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "a network is (address, prefix length 0..32)");
            }
            return NULL;
        }
        masks[i] = prefix ? 0xFFFFFFFFu << (32 - prefix) : 0;
        nets[i] = (uint32_t)address & masks[i];
    }
    Py_DECREF(seq);
    pthread_mutex_lock(&self->lock);
    for (Py_ssize_t i = 0; i < count; i++) self->networks[i].net = nets[i], self->networks[i].mask = masks[i];
    self->nnetworks = (int)count;
    self->gateway = (uint32_t)gateway;
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

/* routers() -> the MACs taken for routers' (their IPv4 never counts as evidence), oldest first. */
static PyObject *Responder_routers(ResponderObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    uint8_t routers[ROUTER_SLOTS][6];
    pthread_mutex_lock(&self->lock);
    int count = self->nrouters, next = self->router_next;
    memcpy(routers, self->routers, sizeof routers);
    pthread_mutex_unlock(&self->lock);
    PyObject *list = PyList_New(count);
    for (int i = 0; list && i < count; i++) {
        PyObject *mac = PyBytes_FromStringAndSize((char *)routers[(next + i) % count], 6);
        if (!mac) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, mac);
    }
    return list;
}

/* silenced(ip) -> the MAC that answered a check of ip (the thread no longer answers for it), or None. */
static PyObject *Responder_silenced(ResponderObject *self, PyObject *arg) {
    if (!ready(self)) return NULL;
    unsigned long ip = PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    uint8_t mac[6];
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    int silenced = h && h->silenced;
    if (silenced) memcpy(mac, h->other_mac, 6);
    pthread_mutex_unlock(&self->lock);
    if (!silenced) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((char *)mac, 6);
}

static PyObject *Responder_stats(ResponderObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    pthread_mutex_lock(&self->lock);
    PyObject *d = Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsnsnsKsKsKsKsKsi}", "received", (unsigned long long)self->received, "silenced",
        (unsigned long long)self->silenced, "answered_arp",
        (unsigned long long)self->answered_arp, "answered_echo", (unsigned long long)self->answered_echo,
        "answered_syn", (unsigned long long)self->answered_syn, "dropped",
        (unsigned long long)self->dropped, "send_errors", (unsigned long long)self->send_errors,
        "recv_errors", (unsigned long long)self->recv_errors, "queued", (Py_ssize_t)self->queued,
        "queued_bytes", (Py_ssize_t)self->queued_bytes, "checks", (unsigned long long)self->checks, "check_busy",
        (unsigned long long)self->check_busy, "check_limited", (unsigned long long)self->check_limited, "routed",
        (unsigned long long)self->routed, "probes_noted", (unsigned long long)self->probes_noted, "routers",
        self->nrouters);
    pthread_mutex_unlock(&self->lock);
    return d;
}

static PyObject *Responder_event_fd(ResponderObject *self, PyObject *unused) {
    if (!ready(self)) return NULL;
    return PyLong_FromLong(self->event_fd);
}

static void Responder_dealloc(ResponderObject *self) {
    if (self->running) {
        __atomic_store_n(&self->stop, 1, __ATOMIC_RELAXED);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
    }
    for (size_t i = 0; i < self->table.capacity; i++) {
        CounterObject *counters[2];
        PyObject *isn;
        TcpRecipe *tcp;
        host_clear(&self->table.slots[i], counters, &isn, &tcp);
        release_detached(counters, isn, tcp);
    }
    free(self->table.slots);
    free(self->recent);
    for (Item *i = self->head; i;) {
        Item *next = i->next;
        free(i);
        i = next;
    }
    if (self->event_fd >= 0) close(self->event_fd);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Responder_methods[] = {
    {"start", (PyCFunction)Responder_start, METH_NOARGS, "start the receive thread"},
    {"stop", (PyCFunction)Responder_stop, METH_NOARGS, "stop the thread (returns within 0.1 s)"},
    {"take", (PyCFunction)Responder_take, METH_VARARGS,
     "take([limit]) -> [(frame, checksums_ok, reply sent or None, note)], oldest first"},
    {"bind", (PyCFunction)Responder_bind, METH_VARARGS, "bind(ip, mac): answer ARP for ip"},
    {"reserve", (PyCFunction)Responder_reserve, METH_O,
     "reserve(ip): an address of ours still being probed (not answered; its frames go to Python)"},
    {"unbind", (PyCFunction)Responder_unbind, METH_O, "unbind(ip): forget ip"},
    {"set_echo", (PyCFunction)Responder_set_echo, METH_VARARGS,
     "set_echo(ip, recipe or None): answer (or stop answering) echo requests for a bound ip"},
    {"set_tcp", (PyCFunction)Responder_set_tcp, METH_VARARGS,
     "set_tcp(ip, recipe or None): answer (or stop answering) ordinary SYNs to a bound ip's open ports"},
    {"forget", (PyCFunction)Responder_forget, METH_VARARGS,
     "forget(src, sport, dst, dport): a closed connection; a new SYN on it may be answered here"},
    {"set_probe_windows", (PyCFunction)Responder_set_probe_windows, METH_O,
     "set_probe_windows(windows): SYNs with these windows are left to Python"},
    {"answer", (PyCFunction)(void (*)(void))Responder_answer, METH_VARARGS | METH_KEYWORDS,
     "answer(frame, checksums_ok=True, now=None) -> reply frame or None (the thread's rule, no IO)"},
    {"judge", (PyCFunction)(void (*)(void))Responder_judge, METH_VARARGS | METH_KEYWORDS,
     "judge(frame, checksums_ok=True, now=None) -> (reply frame or None, note) (the thread's rule, no IO)"},
    {"set_networks", (PyCFunction)Responder_set_networks, METH_VARARGS,
     "set_networks(networks, gateway): the interface's networks [(address, prefix)] and gateway (0: none)"},
    {"routers", (PyCFunction)Responder_routers, METH_NOARGS, "routers() -> the routers' MACs, oldest first"},
    {"silenced", (PyCFunction)Responder_silenced, METH_O,
     "silenced(ip) -> the MAC that answered a check of ip (no longer answered for here), or None"},
    {"stats", (PyCFunction)Responder_stats, METH_NOARGS, "counters"},
    {"event_fd", (PyCFunction)Responder_event_fd, METH_NOARGS,
     "an eventfd that is readable while frames wait"},
    {NULL}};

static PyTypeObject ResponderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dynapot._fastpath.Responder",
    .tp_doc = "Responder(fd, max_frames=65536, max_bytes=64 MiB): the receive thread on raw socket fd "
              "(fd -1: no thread, decisions only).",
    .tp_basicsize = sizeof(ResponderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Responder_new,
    .tp_init = (initproc)Responder_init,
    .tp_dealloc = (destructor)Responder_dealloc,
    .tp_methods = Responder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dynapot._fastpath",
    "The sensor's receive thread in C: ARP, pings and SYNs answered without waking Python.", -1, NULL};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&CounterType) < 0 || PyType_Ready(&IsnType) < 0 || PyType_Ready(&ResponderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CounterType);
    Py_INCREF(&IsnType);
    Py_INCREF(&ResponderType);
    if (PyModule_AddObject(m, "Counter", (PyObject *)&CounterType) < 0 ||
        PyModule_AddObject(m, "Isn", (PyObject *)&IsnType) < 0 ||
        PyModule_AddObject(m, "Responder", (PyObject *)&ResponderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
