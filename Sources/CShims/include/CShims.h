#ifndef CLUSTERDNS_CSHIMS_H
#define CLUSTERDNS_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/types.h>

/// One datagram of a batch: its bytes, the peer, and the local address it was sent to
/// (so the reply leaves from that address on a multi-homed host or a wildcard socket).
typedef struct cdns_datagram {
    uint8_t *buffer;
    size_t capacity;
    size_t length;
    struct sockaddr_storage peer;
    socklen_t peer_length;
    /// AF_INET or AF_INET6 when `local` was received, else 0.
    int local_family;
    struct in_addr local4;
    struct in6_addr local6;
    int interface_index;
} cdns_datagram;

/// Names the calling thread (at most 15 bytes are kept), as `top -H` and `perf` show it.
void cdns_set_thread_name(const char *name);
/* The calling thread's nice value (Linux: per thread); 0 or -1 with errno. */
int cdns_set_thread_niceness(int niceness);

/// Turns on IP_PKTINFO / IPV6_RECVPKTINFO for `fd` (family AF_INET or AF_INET6). 0 or -1 (errno).
int cdns_enable_pktinfo(int fd, int family);

/// recvmmsg(2) of up to `count` datagrams: waits for the first (the socket must be in blocking
/// mode, `cdns_set_blocking`), then takes those already queued behind it (MSG_WAITFORONE).
/// Returns how many were received, 0 when woken with none (the socket shut down, EAGAIN), -1
/// on another error (errno). EINTR is retried here.
int cdns_receive_batch_waiting(int fd, cdns_datagram *datagrams, int count);
/* Clears O_NONBLOCK, for cdns_receive_batch_waiting. */
int cdns_set_blocking(int fd);

/// sendmmsg(2) of `count` datagrams, each to its peer and from its local address. Returns how
/// many were sent, -1 on error (errno). A datagram the kernel refuses is skipped (counted sent).
int cdns_send_batch(int fd, cdns_datagram *datagrams, int count);

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; EINTR is retried. -1 with errno otherwise.
int cdns_accept(int fd);

/// A non-blocking, close-on-exec pipe for splice(2), its buffer raised to `size` if allowed.
/// 0 or -1 (errno).
int cdns_pipe(int fds[2], int size);

/// splice(2) of up to `length` bytes from `in` to `out` (one of them a pipe), non-blocking,
/// moving pages. Bytes moved, 0 at end of stream, -1 with errno (EAGAIN: nothing to move now).
long cdns_splice(int in, int out, size_t length);

/// CPUs this process may run on (its affinity mask), or the online count, at least 1.
int cdns_usable_cores(void);

/// Creates a dummy network interface `name`, up (rtnetlink RTM_NEWLINK). 0, or -errno
/// (EPERM without CAP_NET_ADMIN, EOPNOTSUPP when the kernel has no dummy driver, EEXIST).
int cdns_link_add_dummy(const char *name);

/// Sets interface `index` up. 0 or -errno.
int cdns_link_up(int index);

/// Adds (`add` 1) or removes (0) `address` (4 or 16 bytes, by `family`) with `prefix` on
/// interface `index` (rtnetlink RTM_NEWADDR/RTM_DELADDR; IPv6 without duplicate address
/// detection). 0 or -errno.
int cdns_address(int add, int index, int family, const uint8_t *address, int prefix);

/// posix_spawn(2) of `path` (searched in PATH when `search` is set) with `argv` and `envp`
/// (NULL-terminated), the child's standard input, output and error set to `in`, `out` and `err`
/// (-1 keeps the parent's), its working directory `cwd` (NULL keeps the parent's), signals
/// unblocked and at their defaults, in a process group of its own when `group` is set, and every
/// other descriptor closed in the child whatever its close-on-exec flag says. 0 and `*pid`, or
/// an errno value.
int cdns_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
               int in, int out, int err, const char *cwd, int search, int group);

/// Runs `argv` (its first element searched in PATH) with the environment `envp`, standard
/// input from /dev/null and its output and errors into `output` (at most `capacity` bytes kept,
/// the rest read and dropped; `*length` set), for at most `timeout_ms`: then its whole process
/// group is killed. Returns 0 with `*status` the wait status, 1 on the timeout, or -errno when
/// it cannot be started. EINTR is retried here.
int cdns_run_command(char *const argv[], char *const envp[], int timeout_ms, char *output, size_t capacity,
                     size_t *length, int *status);

#endif
