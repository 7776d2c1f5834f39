#define _GNU_SOURCE
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <net/if.h>

#define CDNS_MAX_BATCH 64
#define CDNS_CONTROL_SIZE 64

int cdns_enable_pktinfo(int fd, int family) {
    int on = 1;
    if (family == AF_INET6) {
        return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    }
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
}

int cdns_receive_batch_waiting(int fd, cdns_datagram *datagrams, int count) {
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
        received = recvmmsg(fd, messages, (unsigned int)count, MSG_WAITFORONE, NULL);
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

int cdns_set_blocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
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

/* rtnetlink: one request, one acknowledgement. */
static int cdns_netlink(struct nlmsghdr *message) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    message->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    message->nlmsg_seq = 1;
    if (sendto(fd, message, message->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    char reply[4096];
    ssize_t n;
    do { n = recv(fd, reply, sizeof reply, 0); } while (n < 0 && errno == EINTR);
    int error = n < 0 ? errno : 0;
    close(fd);
    if (n < 0) return -error;
    struct nlmsghdr *header = (struct nlmsghdr *)reply;
    if (n >= (ssize_t)sizeof(struct nlmsghdr) && header->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *result = (struct nlmsgerr *)NLMSG_DATA(header);
        return result->error;  /* 0: acknowledged; otherwise -errno */
    }
    return 0;
}

static struct rtattr *cdns_attribute(struct nlmsghdr *message, int type, const void *data, int length) {
    struct rtattr *attribute = (struct rtattr *)((char *)message + NLMSG_ALIGN(message->nlmsg_len));
    attribute->rta_type = type;
    attribute->rta_len = RTA_LENGTH(length);
    if (length > 0) memcpy(RTA_DATA(attribute), data, length);
    message->nlmsg_len = NLMSG_ALIGN(message->nlmsg_len) + RTA_ALIGN(attribute->rta_len);
    return attribute;
}

int cdns_link_add_dummy(const char *name) {
    struct { struct nlmsghdr header; struct ifinfomsg info; char attributes[512]; } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    request.header.nlmsg_type = RTM_NEWLINK;
    request.header.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    request.info.ifi_family = AF_UNSPEC;
    request.info.ifi_flags = IFF_UP;
    request.info.ifi_change = IFF_UP;
    cdns_attribute(&request.header, IFLA_IFNAME, name, (int)strlen(name) + 1);
    struct rtattr *linkinfo = cdns_attribute(&request.header, IFLA_LINKINFO, NULL, 0);
    cdns_attribute(&request.header, IFLA_INFO_KIND, "dummy", 5);
    linkinfo->rta_len = (unsigned short)((char *)&request.header + request.header.nlmsg_len - (char *)linkinfo);
    return cdns_netlink(&request.header);
}

int cdns_link_up(int index) {
    struct { struct nlmsghdr header; struct ifinfomsg info; } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    request.header.nlmsg_type = RTM_NEWLINK;
    request.info.ifi_family = AF_UNSPEC;
    request.info.ifi_index = index;
    request.info.ifi_flags = IFF_UP;
    request.info.ifi_change = IFF_UP;
    return cdns_netlink(&request.header);
}

int cdns_address(int add, int index, int family, const uint8_t *address, int prefix) {
    struct { struct nlmsghdr header; struct ifaddrmsg info; char attributes[128]; } request;
    memset(&request, 0, sizeof request);
    int length = family == AF_INET6 ? 16 : 4;
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
    request.header.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
    request.header.nlmsg_flags = add ? (NLM_F_CREATE | NLM_F_REPLACE) : 0;
    request.info.ifa_family = (unsigned char)family;
    request.info.ifa_prefixlen = (unsigned char)prefix;
    request.info.ifa_index = (unsigned int)index;
    request.info.ifa_scope = RT_SCOPE_UNIVERSE;
    request.info.ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
    cdns_attribute(&request.header, IFA_LOCAL, address, length);
    cdns_attribute(&request.header, IFA_ADDRESS, address, length);
    return cdns_netlink(&request.header);
}

int cdns_usable_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0) return count;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

void cdns_set_thread_name(const char *name) {
    char shortened[16];
    strncpy(shortened, name, 15);
    shortened[15] = 0;
    pthread_setname_np(pthread_self(), shortened);
}

int cdns_set_thread_niceness(int niceness) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), niceness);
}

int cdns_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
               int in, int out, int err, const char *cwd, int search, int group) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    result = posix_spawnattr_init(&attributes);
    if (result != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return result;
    }
    int streams[3] = {in, out, err};
    for (int target = 0; target < 3 && result == 0; target++) {
        if (streams[target] >= 0) result = posix_spawn_file_actions_adddup2(&actions, streams[target], target);
    }
    if (result == 0 && cwd != NULL) result = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    if (result == 0) result = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (group) flags |= POSIX_SPAWN_SETPGROUP;
    if (result == 0) result = posix_spawnattr_setsigmask(&attributes, &none);
    if (result == 0) result = posix_spawnattr_setsigdefault(&attributes, &all);
    if (result == 0 && group) result = posix_spawnattr_setpgroup(&attributes, 0);
    if (result == 0) result = posix_spawnattr_setflags(&attributes, flags);
    if (result == 0) {
        result = search ? posix_spawnp(pid, path, &actions, &attributes, argv, envp)
                        : posix_spawn(pid, path, &actions, &attributes, argv, envp);
    }
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

static long long cdns_monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int cdns_run_command(char *const argv[], char *const envp[], int timeout_ms, char *output, size_t capacity,
                     size_t *length, int *status) {
    *length = 0;
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) return -errno;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        int error = errno;
        close(null);
        return -error;
    }
    pid_t pid = 0;
    int result = cdns_spawn(&pid, argv[0], argv, envp, null, fds[1], fds[1], NULL, 1, 1);
    close(null);
    close(fds[1]);
    if (result != 0) {
        close(fds[0]);
        return -result;
    }
    long long deadline = cdns_monotonic_ms() + timeout_ms;
    int open_output = 1, exited = 0, timed_out = 0;
    char scratch[4096];
    while (!exited || open_output) {
        long long left = deadline - cdns_monotonic_ms();
        if (left <= 0) {
            timed_out = !exited;
            break;
        }
        if (open_output) {
            struct pollfd poller = {.fd = fds[0], .events = POLLIN};
            int wait = left < 10 ? (int)left : 10;
            if (poll(&poller, 1, wait) < 0 && errno != EINTR) break;
            for (;;) {
                size_t room = capacity - *length;
                ssize_t n = room > 0 ? read(fds[0], output + *length, room) : read(fds[0], scratch, sizeof scratch);
                if (n > 0) {
                    if (room > 0) *length += (size_t)n;
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n == 0) open_output = 0;
                break;
            }
        } else {
            usleep(2000);
        }
        if (!exited) {
            pid_t r;
            do { r = waitpid(pid, status, WNOHANG); } while (r < 0 && errno == EINTR);
            if (r == pid || r < 0) exited = 1;
        }
    }
    close(fds[0]);
    if (!exited) {
        // The deadline (or the child's output kept open by something it left behind): the
        // whole group goes, so that nothing it started lingers.
        kill(-pid, SIGKILL);
        pid_t r;
        do { r = waitpid(pid, status, 0); } while (r < 0 && errno == EINTR);
    } else if (open_output) {
        // Exited, but something it started still holds its output: that goes too.
        kill(-pid, SIGKILL);
    }
    return timed_out ? 1 : 0;
}
