#define _GNU_SOURCE
#include "CTestSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/// Writes all of `length` bytes, retrying on EINTR; 0 or -1.
static int write_all(int fd, const void *bytes, size_t length) {
    const char *p = bytes;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

/// Reads up to `length` bytes until the end of the stream, retrying on EINTR: how many.
static ssize_t read_all(int fd, void *bytes, size_t length) {
    char *p = bytes;
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, p + got, length - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/// In the child between fork and exec: only async-signal-safe calls. Never returns.
static void become(const char *path, char *const argv[], char *const envp[], int streams[3], const char *cwd,
                   pid_t parent, int report) {
    int error = 0;
    if (setpgid(0, 0) != 0) goto failed;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto failed;
    // The parent may have ended before the request took effect.
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int signal = 1; signal < NSIG; signal++) {
        if (signal != SIGKILL && signal != SIGSTOP) {
            struct sigaction action = {0};
            action.sa_handler = SIG_DFL;
            sigaction(signal, &action, NULL);
        }
    }
    for (int target = 0; target < 3; target++) {
        if (streams[target] < 0) continue;
        if (streams[target] == target) {
            // dup2 onto itself keeps close-on-exec; clear it instead.
            int flags = fcntl(target, F_GETFD);
            if (flags < 0 || fcntl(target, F_SETFD, flags & ~FD_CLOEXEC) != 0) goto failed;
        } else if (dup2(streams[target], target) < 0) {
            goto failed;
        }
    }
    // Every other descriptor closed but the report pipe, which exec closes.
    if (report > 3) close_range(3, (unsigned)report - 1, 0);
    close_range((unsigned)report + 1, ~0U, 0);
    if (cwd != NULL && chdir(cwd) != 0) goto failed;
    execve(path, argv, envp);
failed:
    error = errno;
    write_all(report, &error, sizeof error);
    _exit(127);
}

int cdns_test_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                    int in, int out, int err, const char *cwd) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    int streams[3] = {in, out, err};
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return error;
    }
    if (child == 0) become(path, argv, envp, streams, cwd, parent, report[1]);
    close(report[1]);
    int error = 0;
    ssize_t n = read_all(report[0], &error, sizeof error);
    close(report[0]);
    if (n == (ssize_t)sizeof error) {
        // It never ran: reap it here.
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return error;
    }
    *pid = child;
    return 0;
}

int cdns_test_spawn_from_dying_parent(pid_t *grandchild, const char *path, char *const argv[], char *const envp[]) {
    int channel[2];
    if (pipe2(channel, O_CLOEXEC) != 0) return errno;
    pid_t middle = fork();
    if (middle < 0) {
        int error = errno;
        close(channel[0]);
        close(channel[1]);
        return error;
    }
    if (middle == 0) {
        // One thread here: the one that spawns, and then ends with the process.
        pid_t started = 0;
        int error = cdns_test_spawn(&started, path, argv, envp, -1, -1, -1, NULL);
        int64_t message[2] = {error, started};
        write_all(channel[1], message, sizeof message);
        _exit(0);
    }
    close(channel[1]);
    int64_t message[2] = {0, 0};
    ssize_t n = read_all(channel[0], message, sizeof message);
    close(channel[0]);
    int status;
    while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {}
    if (n != (ssize_t)sizeof message) return EPIPE;
    if (message[0] != 0) return (int)message[0];
    *grandchild = (pid_t)message[1];
    return 0;
}
