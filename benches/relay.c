/*
 * relay: the physical reference for a userspace TAP switch (benches/system.py).
 *
 * Creates two TAPs (names from argv) the way tapswitch opens its ports
 * (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 10-byte virtio_net_hdr, TUNSETOFFLOAD with
 * CSUM and TSO4/TSO6/ECN), sets them up, and relays frames between them: one thread,
 * level-triggered epoll, for a readable fd read up to BATCH frames (or until EAGAIN)
 * and write each one unchanged, header included, to the other fd; a frame the other
 * side does not take (EAGAIN or any error) is dropped. No table, no parsing, no spin.
 *
 * Prints "ready" on stderr once both TAPs are up; SIGTERM or SIGINT exits cleanly
 * (the TAPs vanish with the fds). Prints frames/drops per direction on exit.
 *
 * Build: gcc -O2 -o relay relay.c      Run (root): ./relay TAP0 TAP1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define VNET_HDR_LEN 10          /* struct virtio_net_hdr, as tapswitch */
#define FRAME_MAX (VNET_HDR_LEN + 65536 + 18) /* GSO frame up to 64 KiB + L2 */
#define BATCH 64                 /* frames per readable fd per wake-up */

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static int open_tap(const char *name) {
    struct ifreq ifr;
    int fd, hdr = VNET_HDR_LEN, sk;
    unsigned long offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

    if (strlen(name) >= IFNAMSIZ) {
        fprintf(stderr, "relay: interface name too long: %s\n", name);
        return -1;
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        perror("relay: open /dev/net/tun");
        return -1;
    }
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        perror("relay: TUNSETIFF");
        goto fail;
    }
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        perror("relay: TUNSETVNETHDRSZ");
        goto fail;
    }
    if (ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
        perror("relay: TUNSETOFFLOAD");
        goto fail;
    }
    sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sk < 0) {
        perror("relay: socket");
        goto fail;
    }
    if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0) {
        perror("relay: SIOCGIFFLAGS");
        close(sk);
        goto fail;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sk, SIOCSIFFLAGS, &ifr) < 0) {
        perror("relay: SIOCSIFFLAGS");
        close(sk);
        goto fail;
    }
    close(sk);
    return fd;
fail:
    close(fd);
    return -1;
}

int main(int argc, char **argv) {
    /* Page-aligned on purpose, as tapswitch's buffers are (src/buf.rs): the kernel copies a
     * frame written to a TAP into page-aligned pages with `rep movsb`, which is many times
     * slower on FSRM CPUs when the destination is a few bytes past the source modulo 4 KiB.
     * Where the linker happened to put an unaligned buffer would help or hurt the anchor by
     * chance. */
    static unsigned char buf[FRAME_MAX] __attribute__((aligned(4096)));
    unsigned long long frames[2] = {0, 0}, drops[2] = {0, 0};
    struct epoll_event ev, evs[2];
    struct sigaction sa;
    int fds[2], ep, i, n, rc = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s TAP0 TAP1\n", argv[0]);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    fds[0] = open_tap(argv[1]);
    if (fds[0] < 0)
        return 1;
    fds[1] = open_tap(argv[2]);
    if (fds[1] < 0)
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("relay: epoll_create1");
        return 1;
    }
    for (i = 0; i < 2; i++) {
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN; /* level-triggered: a batch cut short is reported again */
        ev.data.u32 = (unsigned)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
            perror("relay: epoll_ctl");
            return 1;
        }
    }
    fprintf(stderr, "relay: %s <-> %s ready\n", argv[1], argv[2]);

    while (!stop) {
        n = epoll_wait(ep, evs, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("relay: epoll_wait");
            rc = 1;
            break;
        }
        for (i = 0; i < n; i++) {
            int from = (int)evs[i].data.u32, to = 1 - from, k;
            for (k = 0; k < BATCH; k++) {
                ssize_t len = read(fds[from], buf, sizeof buf);
                if (len < 0) {
                    if (errno == EAGAIN || errno == EINTR)
                        break;
                    perror("relay: read"); /* persistent (EBADFD, ...): do not spin */
                    stop = 1;
                    rc = 1;
                    break;
                }
                if (len == 0)
                    break;
                if (write(fds[to], buf, (size_t)len) == len)
                    frames[from]++;
                else
                    drops[from]++;
            }
        }
    }
    fprintf(stderr, "relay: %s->%s %llu frames %llu dropped, %s->%s %llu frames %llu dropped\n",
            argv[1], argv[2], frames[0], drops[0], argv[2], argv[1], frames[1], drops[1]);
    close(ep);
    close(fds[0]);
    close(fds[1]);
    return rc;
}
