#define _GNU_SOURCE
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CDNS_MAX_BATCH 64
#define CDNS_CONTROL_SIZE 64

int cdns_enable_pktinfo(int fd, int family) {
    int on = 1;
    if (family == AF_INET6) {
        return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    }
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
}

int cdns_receive_batch(int fd, cdns_datagram *datagrams, int count) {
    if (count > CDNS_MAX_BATCH) count = CDNS_MAX_BATCH;
    struct mmsghdr messages[CDNS_MAX_BATCH];
    struct iovec vectors[CDNS_MAX_BATCH];
    char control[CDNS_MAX_BATCH][CDNS_CONTROL_SIZE];
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = datagrams[i].buffer;
        vectors[i].iov_len = datagrams[i].capacity;
        messages[i].msg_hdr.msg_name = &datagrams[i].peer;
        messages[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = control[i];
        messages[i].msg_hdr.msg_controllen = CDNS_CONTROL_SIZE;
    }
    int received;
    do {
        received = recvmmsg(fd, messages, (unsigned int)count, MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    for (int i = 0; i < received; i++) {
        cdns_datagram *d = &datagrams[i];
        d->length = messages[i].msg_len;
        d->peer_length = messages[i].msg_hdr.msg_namelen;
        d->local_family = 0;
        d->interface_index = 0;
        /* A datagram larger than the buffer is cut: mark it empty so it is dropped. */
        if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) d->length = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr); c; c = CMSG_NXTHDR(&messages[i].msg_hdr, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo info;
                memcpy(&info, CMSG_DATA(c), sizeof info);
                d->local_family = AF_INET;
                d->local4 = info.ipi_addr;
                d->interface_index = info.ipi_ifindex;
            } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo info;
                memcpy(&info, CMSG_DATA(c), sizeof info);
                d->local_family = AF_INET6;
                d->local6 = info.ipi6_addr;
                d->interface_index = (int)info.ipi6_ifindex;
            }
        }
    }
    return received;
}

int cdns_send_batch(int fd, cdns_datagram *datagrams, int count) {
    if (count > CDNS_MAX_BATCH) count = CDNS_MAX_BATCH;
    struct mmsghdr messages[CDNS_MAX_BATCH];
    struct iovec vectors[CDNS_MAX_BATCH];
    char control[CDNS_MAX_BATCH][CDNS_CONTROL_SIZE];
    memset(messages, 0, sizeof(struct mmsghdr) * (size_t)count);
    memset(control, 0, sizeof(control[0]) * (size_t)count);
    for (int i = 0; i < count; i++) {
        cdns_datagram *d = &datagrams[i];
        vectors[i].iov_base = d->buffer;
        vectors[i].iov_len = d->length;
        messages[i].msg_hdr.msg_name = &d->peer;
        messages[i].msg_hdr.msg_namelen = d->peer_length;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        if (d->local_family == AF_INET) {
            messages[i].msg_hdr.msg_control = control[i];
            messages[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
            struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
            struct in_pktinfo info;
            memset(&info, 0, sizeof info);
            info.ipi_spec_dst = d->local4;
            memcpy(CMSG_DATA(c), &info, sizeof info);
        } else if (d->local_family == AF_INET6) {
            messages[i].msg_hdr.msg_control = control[i];
            messages[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
            struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr);
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
            struct in6_pktinfo info;
            memset(&info, 0, sizeof info);
            info.ipi6_addr = d->local6;
            info.ipi6_ifindex = (unsigned int)d->interface_index;
            memcpy(CMSG_DATA(c), &info, sizeof info);
        }
    }
    int sent = 0;
    while (sent < count) {
        int n = sendmmsg(fd, messages + sent, (unsigned int)(count - sent), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return sent;
            /* This datagram is refused (an unreachable peer): skip it, send the rest. */
            sent += 1;
            continue;
        }
        sent += n;
    }
    return sent;
}

int cdns_accept(int fd) {
    int client;
    do {
        client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (client < 0 && errno == EINTR);
    return client;
}

int cdns_pipe(int fds[2], int size) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    (void)fcntl(fds[1], F_SETPIPE_SZ, size);
    return 0;
}

long cdns_splice(int in, int out, size_t length) {
    ssize_t n;
    do {
        n = splice(in, NULL, out, NULL, length, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    } while (n < 0 && errno == EINTR);
    return (long)n;
}
