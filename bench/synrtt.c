/* synrtt: TCP SYN -> SYN/ACK round trips, timed the way ping times echoes.
 *
 *   synrtt DST PORT COUNT [INTERVAL_MS]
 *
 * Sends COUNT SYNs (a Linux client's options, each from its own source port) from a raw
 * socket and prints one round trip per line in microseconds: from just before sendto() to
 * the kernel's receive timestamp of the SYN/ACK (SO_TIMESTAMPNS), as ping does with its
 * echo replies. The local kernel resets each half-open connection itself. A SYN unanswered
 * within one second prints "timeout". Only for the lab: it sends where it is told.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint16_t checksum(const uint8_t *p, size_t n, uint32_t sum) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: synrtt DST PORT COUNT [INTERVAL_MS]\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[1]);
        return 2;
    }
    int count = atoi(argv[3]), interval_ms = argc > 4 ? atoi(argv[4]) : 10;
    if (count < 1 || count > 100000 || interval_ms < 0 || interval_ms > 10000) {
        fprintf(stderr, "count 1..100000, interval 0..10000 ms\n");
        return 2;
    }
    /* the source address the kernel would use towards dst */
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in src;
    socklen_t len = sizeof src;
    if (probe < 0 || connect(probe, (struct sockaddr *)&dst, sizeof dst) < 0 ||
        getsockname(probe, (struct sockaddr *)&src, &len) < 0) {
        perror("route");
        return 1;
    }
    close(probe);
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
    if (s < 0) {
        perror("raw socket (needs root)");
        return 1;
    }
    int one = 1;
    struct timeval tv = {0, 100000};
    setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint32_t saddr = ntohl(src.sin_addr.s_addr), daddr = ntohl(dst.sin_addr.s_addr);
    uint16_t dport = ntohs(dst.sin_port), base = (uint16_t)(20000 + (getpid() % 20000));
    for (int i = 0; i < count; i++) {
        uint16_t sport = (uint16_t)(base + i % 20000);
        uint32_t seq = (uint32_t)rand();
        uint8_t syn[40] = {0};
        syn[0] = sport >> 8, syn[1] = (uint8_t)sport, syn[2] = dport >> 8, syn[3] = (uint8_t)dport;
        syn[4] = seq >> 24, syn[5] = seq >> 16, syn[6] = seq >> 8, syn[7] = (uint8_t)seq;
        syn[12] = 10 << 4, syn[13] = 0x02, syn[14] = 0xFA, syn[15] = 0xF0; /* window 64240 */
        /* MSS 1460, SACK permitted, timestamps, NOP, window scale 7 */
        const uint8_t opts[20] = {2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7};
        memcpy(syn + 20, opts, 20);
        uint32_t pseudo = (saddr >> 16) + (saddr & 0xFFFF) + (daddr >> 16) + (daddr & 0xFFFF) + 6 + 40;
        uint16_t c = checksum(syn, 40, pseudo);
        syn[16] = c >> 8, syn[17] = (uint8_t)c;
        double sent = now_us();
        if (sendto(s, syn, sizeof syn, 0, (struct sockaddr *)&dst, sizeof dst) != sizeof syn) {
            perror("sendto");
            return 1;
        }
        double rtt = -1;
        while (now_us() - sent < 1e6 && rtt < 0) {
            uint8_t buf[1500];
            char control[256];
            struct iovec iov = {buf, sizeof buf};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                 .msg_controllen = sizeof control};
            ssize_t n = recvmsg(s, &msg, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                perror("recvmsg");
                return 1;
            }
            size_t hl = (size_t)(buf[0] & 0x0F) * 4;
            if ((size_t)n < hl + 20 || memcmp(buf + 12, &dst.sin_addr, 4) != 0) continue;
            const uint8_t *t = buf + hl;
            uint32_t ack = (uint32_t)t[8] << 24 | t[9] << 16 | t[10] << 8 | t[11];
            if ((t[0] << 8 | t[1]) != dport || (t[2] << 8 | t[3]) != sport || (t[13] & 0x12) != 0x12 ||
                ack != seq + 1)
                continue;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                    rtt = ts.tv_sec * 1e6 + ts.tv_nsec / 1e3 - sent;
                }
            }
            if (rtt < 0) rtt = now_us() - sent; /* no timestamp: the later, user-space time */
        }
        if (rtt < 0) printf("timeout\n");
        else printf("%.1f\n", rtt);
        fflush(stdout);
        if (interval_ms) usleep((useconds_t)interval_ms * 1000);
    }
    return 0;
}
