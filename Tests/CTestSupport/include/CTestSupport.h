#ifndef CLUSTERDNS_CTESTSUPPORT_H
#define CLUSTERDNS_CTESTSUPPORT_H

#include <sys/types.h>

/// Starts `path` with `argv` and `envp` in a process group of its own, with `in`, `out` and
/// `err` (or this process's own where -1) as its standard streams, every other descriptor
/// closed, the default signal mask and dispositions, in `cwd` when not NULL; it is killed
/// (SIGKILL) when the thread that started it ends, so a test process that dies leaves no child.
/// Returns 0 and the child's ID, or the errno of what failed (exec included).
int cdns_test_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                    int in, int out, int err, const char *cwd);

/// For the test of the above: a process that starts `path` through `cdns_test_spawn`, hands
/// back its ID and exits at once, as a test process that crashes. Returns 0 or an errno.
int cdns_test_spawn_from_dying_parent(pid_t *grandchild, const char *path, char *const argv[], char *const envp[]);

#endif
