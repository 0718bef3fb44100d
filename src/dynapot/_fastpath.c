/* dynapot._fastpath: the sensor's receive thread, in C.
 *
 * Why C: a Python process that wakes for a frame runs its code cold, and a ping answered
 * from Python took 4-5x the round trip of a real host on the same bridge (a blocking
 * Python loop with nothing else in it still took 2.8x; the same loop in C, 1.1-1.4x).
 * So one native thread, which never takes the GIL, reads the raw socket:
 *
 *   - it answers ARP requests and ICMP echo requests for the hosts Python registered,
 *     by the same rules as dynapot.netstack.arp and the personality's echo_reply
 *     (tests/unit/test_fastpath.py checks the two byte for byte);
 *   - it queues every frame, answered or not, for Python, which logs it, detects address
 *     conflicts and runs TCP, UDP and everything else. A frame's `answered` flag is the
 *     thread's decision, so exactly one of the two ever replies.
 *
 * The queue is bounded (frames and bytes); a full queue drops and counts, as a full
 * socket buffer would. An eventfd tells Python's event loop that frames wait.
 * IP ID counters a host shares between ICMP (here) and TCP (in Python) are `Counter`
 * objects with atomic updates.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
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

/* ------------------------------------------------------------------ host table */

enum { IPID_CONST = 1, IPID_RD = 2, IPID_INC = 3 };  /* as the personality engine numbers them */
enum { DF_NO = 0, DF_YES = 1, DF_SAME = 2, DF_OPPOSITE = 3 };

typedef struct {
    uint32_t ip;     /* 0: empty slot; TOMBSTONE: deleted */
    uint8_t mac[6];
    uint8_t bound;   /* claimed: answer ARP (an unbound entry is an address still being probed) */
    uint8_t echo;    /* answer echo requests with the recipe below */
    uint8_t ttl, df_mode, ipid_kind;
    int16_t code;    /* >= 0: this code; -1: the request's; -2: the request's + 1 */
    uint16_t const_id, step_low, step_high;
    CounterObject *counter; /* strong reference, or NULL */
    uint64_t rng;
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
    uint32_t len;
    uint8_t checksums_ok, answered;
    uint8_t data[];
} Item;

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
    uint64_t received, answered_arp, answered_echo, dropped, send_errors, recv_errors;
} ResponderObject;

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

static uint16_t next_ip_id(Host *h) {
    if (h->ipid_kind == IPID_INC && h->counter) {
        uint32_t step = h->step_low;
        if (h->step_high != step) {
            step += (uint32_t)(xorshift(&h->rng) % (uint32_t)(h->step_high - h->step_low + 1));
            if (step % 256 == 0) step += 1; /* nmap reads multiples of 256 as broken increments */
        }
        return (uint16_t)(counter_advance(h->counter, step) + 1);
    }
    if (h->ipid_kind == IPID_RD && h->counter) {
        uint32_t jump = 20001 + (uint32_t)(xorshift(&h->rng) % 25535);
        return (uint16_t)(counter_advance(h->counter, jump) + jump);
    }
    return h->const_id;
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

/* An echo reply for `f`, by the personality's echo_reply; its length, or 0. Lock held. */
static size_t decide_echo(Table *t, const uint8_t *f, size_t n, uint8_t *out) {
    if (n < 14 + 20) return 0;
    const uint8_t *ip = f + 14;
    size_t avail = n - 14, hl = (size_t)(ip[0] & 0x0F) * 4;
    if (ip[0] >> 4 != 4 || hl < 20 || hl > avail || ip[9] != 1) return 0;
    size_t total = be16(ip + 2);
    if (total < hl + 8 || total > avail) return 0;
    uint16_t frag = be16(ip + 6);
    if (frag & 0x3FFF) return 0; /* fragments are Python's to drop */
    uint64_t s = sum16(ip, hl);
    if (s % 0xFFFF) return 0;    /* bad header checksum (as parse_ipv4 tests it) */
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
    put16(oip + 4, next_ip_id(h));
    put16(oip + 6, df ? 0x4000 : 0);
    oip[8] = h->ttl, oip[9] = 1, oip[10] = oip[11] = 0;
    put32(oip + 12, dst);
    put32(oip + 16, src);
    uint64_t hs = sum16(oip, 20) % 0xFFFF;
    put16(oip + 10, hs ? (uint16_t)(0xFFFF - hs) : 0);
    return 14 + out_total;
}

static size_t decide(Table *t, const uint8_t *f, size_t n, int checksums_ok, uint8_t *out) {
    if (n < 14) return 0;
    uint16_t type = be16(f + 12);
    if (type == 0x0806) return decide_arp(t, f, n, out);
    if (type == 0x0800 && checksums_ok) return decide_echo(t, f, n, out);
    return 0;
}

/* ------------------------------------------------------------------ the thread */

static void enqueue(ResponderObject *r, const uint8_t *f, size_t n, int ok, int answered) {
    /* lock held */
    if (r->queued >= r->max_frames || r->queued_bytes + n > r->max_bytes) {
        r->dropped++;
        return;
    }
    Item *item = malloc(sizeof(Item) + n);
    if (!item) {
        r->dropped++;
        return;
    }
    item->next = NULL, item->len = (uint32_t)n, item->checksums_ok = (uint8_t)ok;
    item->answered = (uint8_t)answered;
    memcpy(item->data, f, n);
    int was_empty = r->head == NULL;
    if (r->tail) r->tail->next = item; else r->head = item;
    r->tail = item;
    r->queued++, r->queued_bytes += n;
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
        pthread_mutex_lock(&r->lock);
        size_t m = decide(&r->table, frame, (size_t)n, ok, reply);
        pthread_mutex_unlock(&r->lock);
        /* sent outside the lock: the send carries the frame across the bridge, tens of us */
        int answered = m && send(r->fd, reply, m, MSG_DONTWAIT) == (ssize_t)m;
        pthread_mutex_lock(&r->lock);
        r->received++;
        if (m && !answered) r->send_errors++;
        else if (answered && be16(frame + 12) == 0x0806) r->answered_arp++;
        else if (answered) r->answered_echo++;
        enqueue(r, frame, (size_t)n, ok, answered);
        pthread_mutex_unlock(&r->lock);
    }
    free(frame), free(reply);
    return NULL;
}

/* ------------------------------------------------------------------ Responder */

static int Responder_init(ResponderObject *self, PyObject *args, PyObject *kw) {
    int fd;
    Py_ssize_t max_frames = 65536, max_bytes = 64 << 20;
    static char *names[] = {"fd", "max_frames", "max_bytes", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|nn", names, &fd, &max_frames, &max_bytes)) return -1;
    if (max_frames < 1 || max_bytes < MAX_FRAME) {
        PyErr_SetString(PyExc_ValueError, "max_frames must be >= 1 and max_bytes >= 65536");
        return -1;
    }
    self->fd = fd, self->event_fd = -1;
    self->max_frames = (size_t)max_frames, self->max_bytes = (size_t)max_bytes;
    pthread_mutex_init(&self->lock, NULL);
    self->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->event_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *Responder_start(ResponderObject *self, PyObject *unused) {
    if (self->running) Py_RETURN_NONE;
    if (self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "no socket: this responder only decides (answer())");
        return NULL;
    }
    {
        struct timeval tv = {0, RECV_TIMEOUT_US};
        int one = 1;
        if (setsockopt(self->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
            setsockopt(self->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
    }
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
        for (Item *i = items; i; i = i->next) self->queued_bytes -= i->len;
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
            PyObject *t = Py_BuildValue("(y#OO)", (const char *)i->data, (Py_ssize_t)i->len,
                                        i->checksums_ok ? Py_True : Py_False,
                                        i->answered ? Py_True : Py_False);
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
    if (h) memcpy(h->mac, mac, 6), h->bound = 1;
    pthread_mutex_unlock(&self->lock);
    if (!h) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* reserve(ip): an address of ours not yet claimed (ARP-probed first): never answered for, but
 * frames from it are left to Python, which watches for conflicts. */
static PyObject *Responder_reserve(ResponderObject *self, PyObject *arg) {
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

/* unbind(ip): forget the address altogether (ARP and echo). */
static PyObject *Responder_unbind(ResponderObject *self, PyObject *arg) {
    unsigned long ip = PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    CounterObject *counter = NULL;
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    if (h) {
        counter = h->counter;
        memset(h, 0, sizeof *h);
        h->ip = TOMBSTONE;
    }
    pthread_mutex_unlock(&self->lock);
    Py_XDECREF(counter);
    Py_RETURN_NONE;
}

/* set_echo(ip, recipe or None); recipe = (ttl, df_mode, code, ipid_kind, const_id, low, high, counter) */
static PyObject *Responder_set_echo(ResponderObject *self, PyObject *args) {
    unsigned long ip;
    PyObject *recipe;
    if (!PyArg_ParseTuple(args, "kO", &ip, &recipe)) return NULL;
    int ttl = 0, df_mode = 0, code = 0, kind = 0, const_id = 0, low = 0, high = 0;
    PyObject *counter = Py_None;
    if (recipe != Py_None) {
        if (!PyTuple_Check(recipe)) {
            PyErr_SetString(PyExc_TypeError, "an echo recipe is a tuple or None");
            return NULL;
        }
        if (!PyArg_ParseTuple(recipe, "iiiiiiiO", &ttl, &df_mode, &code, &kind, &const_id, &low, &high,
                              &counter))
            return NULL;
        if (ttl < 1 || ttl > 255 || df_mode < 0 || df_mode > 3 || code < -2 || code > 255 ||
            (kind != IPID_CONST && kind != IPID_RD && kind != IPID_INC) || const_id < 0 ||
            const_id > 0xFFFF || low < 0 || high < low || high > 0xFFFF ||
            (kind != IPID_CONST && !PyObject_TypeCheck(counter, &CounterType))) {
            PyErr_SetString(PyExc_ValueError, "bad echo recipe");
            return NULL;
        }
    }
    CounterObject *old = NULL;
    pthread_mutex_lock(&self->lock);
    Host *h = table_find(&self->table, (uint32_t)ip);
    if (h) {
        old = h->counter;
        h->counter = NULL;
        h->echo = recipe != Py_None;
        if (h->echo) {
            h->ttl = (uint8_t)ttl, h->df_mode = (uint8_t)df_mode, h->code = (int16_t)code;
            h->ipid_kind = (uint8_t)kind, h->const_id = (uint16_t)const_id;
            h->step_low = (uint16_t)low, h->step_high = (uint16_t)high;
            if (kind != IPID_CONST) {
                Py_INCREF(counter);
                h->counter = (CounterObject *)counter;
            }
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

/* answer(frame, checksums_ok=True): the thread's decision for one frame, without IO (for tests). */
static PyObject *Responder_answer(ResponderObject *self, PyObject *args) {
    Py_buffer frame;
    int ok = 1;
    if (!PyArg_ParseTuple(args, "y*|p", &frame, &ok)) return NULL;
    uint8_t *out = malloc(MAX_FRAME + 64);
    if (!out) {
        PyBuffer_Release(&frame);
        return PyErr_NoMemory();
    }
    size_t n = frame.len > MAX_FRAME ? 0 : 1;
    if (n) {
        pthread_mutex_lock(&self->lock);
        n = decide(&self->table, frame.buf, (size_t)frame.len, ok, out);
        pthread_mutex_unlock(&self->lock);
    }
    PyBuffer_Release(&frame);
    PyObject *result = n ? PyBytes_FromStringAndSize((char *)out, (Py_ssize_t)n) : Py_NewRef(Py_None);
    free(out);
    return result;
}

static PyObject *Responder_stats(ResponderObject *self, PyObject *unused) {
    pthread_mutex_lock(&self->lock);
    PyObject *d = Py_BuildValue(
        "{sKsKsKsKsKsKsnsn}", "received", (unsigned long long)self->received, "answered_arp",
        (unsigned long long)self->answered_arp, "answered_echo", (unsigned long long)self->answered_echo,
        "dropped", (unsigned long long)self->dropped, "send_errors", (unsigned long long)self->send_errors,
        "recv_errors", (unsigned long long)self->recv_errors, "queued", (Py_ssize_t)self->queued,
        "queued_bytes", (Py_ssize_t)self->queued_bytes);
    pthread_mutex_unlock(&self->lock);
    return d;
}

static PyObject *Responder_event_fd(ResponderObject *self, PyObject *unused) {
    return PyLong_FromLong(self->event_fd);
}

static void Responder_dealloc(ResponderObject *self) {
    if (self->running) {
        __atomic_store_n(&self->stop, 1, __ATOMIC_RELAXED);
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < self->table.capacity; i++) Py_XDECREF(self->table.slots[i].counter);
    free(self->table.slots);
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
     "take([limit]) -> [(frame, checksums_ok, answered)], oldest first"},
    {"bind", (PyCFunction)Responder_bind, METH_VARARGS, "bind(ip, mac): answer ARP for ip"},
    {"reserve", (PyCFunction)Responder_reserve, METH_O,
     "reserve(ip): an address of ours still being probed (not answered; its frames go to Python)"},
    {"unbind", (PyCFunction)Responder_unbind, METH_O, "unbind(ip): forget ip"},
    {"set_echo", (PyCFunction)Responder_set_echo, METH_VARARGS,
     "set_echo(ip, recipe or None): answer (or stop answering) echo requests for a bound ip"},
    {"answer", (PyCFunction)Responder_answer, METH_VARARGS,
     "answer(frame, checksums_ok=True) -> reply frame or None (the thread's rule, no IO)"},
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
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Responder_init,
    .tp_dealloc = (destructor)Responder_dealloc,
    .tp_methods = Responder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dynapot._fastpath",
    "The sensor's receive thread in C: ARP and ICMP echo answered without waking Python.", -1, NULL};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&CounterType) < 0 || PyType_Ready(&ResponderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CounterType);
    Py_INCREF(&ResponderType);
    if (PyModule_AddObject(m, "Counter", (PyObject *)&CounterType) < 0 ||
        PyModule_AddObject(m, "Responder", (PyObject *)&ResponderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
